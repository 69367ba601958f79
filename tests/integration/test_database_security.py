"""The embedded PostgreSQL is crash-safe, reachable by its owner only, and the services' role owns nothing."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest

from services.common import db, eventstore
from services.common.embedded import SOCKET_DIR_MAX, EmbeddedPostgres
from services.common.eventstore import NewEvent, canonical
from services.common.infra import Infrastructure
from services.common.settings import Settings
from tests.helpers import cloudevent, unique


@pytest.fixture(scope="module")
def embedded(infra: Infrastructure, request: pytest.FixtureRequest) -> EmbeddedPostgres:
    """The session's embedded PostgreSQL, or one of this module's own where DATABASE_URL names another server
    (these tests are about the embedded server's configuration, so they always have one to check)."""
    if infra.embedded_postgres is not None:
        return infra.embedded_postgres
    own: EmbeddedPostgres = request.getfixturevalue("server")
    return own


@pytest.fixture
async def service(embedded: EmbeddedPostgres) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the services connect."""
    conn = await asyncpg.connect(embedded.service_url)
    yield conn
    await conn.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_embedded_database_is_crash_safe_by_default(
        embedded: EmbeddedPostgres, service: asyncpg.Connection) -> None:
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        assert await service.fetchval(f"SHOW {name}") == "on", name


async def test_the_embedded_database_accepts_no_connection_over_loopback_tcp(embedded: EmbeddedPostgres) -> None:
    for user in ("postgres", "casefeedback_owner", "casefeedback_service"):
        with pytest.raises((OSError, asyncpg.InvalidAuthorizationSpecificationError,
                            asyncpg.InvalidPasswordError)):
            conn = await asyncpg.connect(host="127.0.0.1", port=embedded.port, user=user, database="casefeedback",
                                         timeout=5)
            await conn.execute("COPY (SELECT 1) TO PROGRAM 'touch /tmp/casefeedback-pwned'")  # what a local user did


def test_the_socket_directory_and_server_log_are_its_owners_only(embedded: EmbeddedPostgres) -> None:
    assert embedded.socket_dir is not None
    assert _mode(embedded.socket_dir) == 0o700
    assert _mode(embedded.socket_dir / f".s.PGSQL.{embedded.port}") & 0o077 == 0
    assert embedded.data_dir is not None
    assert _mode(embedded.data_dir / "server.log") == 0o600


def test_a_data_directory_too_long_for_a_socket_listens_on_loopback_with_a_password(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * SOCKET_DIR_MAX)
    data_dir.mkdir(mode=0o700)
    server = EmbeddedPostgres(data_dir=data_dir).start()
    try:
        assert server.socket_dir is None and "127.0.0.1" in server.service_url
        assert _run(_connects(server.service_url)) == "casefeedback_service"
        assert _run(_connects(server.url)) == "casefeedback_owner"
        for user in ("postgres", "casefeedback_owner", "casefeedback_service"):
            with pytest.raises(asyncpg.InvalidPasswordError):  # trust would have let this in
                _run(_connects(f"postgresql://{user}@127.0.0.1:{server.port}/casefeedback"))
            with pytest.raises(asyncpg.InvalidPasswordError):
                _run(_connects(f"postgresql://{user}:guess@127.0.0.1:{server.port}/casefeedback"))
    finally:
        server.stop()


def _run(coro: object) -> object:
    import asyncio

    return asyncio.run(coro)  # type: ignore[arg-type]


async def _connects(url: str) -> str:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return str(await conn.fetchval("SELECT current_user"))
    finally:
        await conn.close()


# --- least privilege ------------------------------------------------------------------------------

ATTACKS = [
    "UPDATE events SET type = 'x' WHERE seq = (SELECT max(seq) FROM events)",
    "DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)",
    "TRUNCATE events",
    "ALTER TABLE events DISABLE TRIGGER ALL",
    "ALTER TABLE events DISABLE TRIGGER events_no_update",
    "DROP TABLE events",
    "CREATE TABLE x ()",
    "DROP TABLE escalation_cases",
    "TRUNCATE escalation_cases",
    "INSERT INTO schema_migrations(name) VALUES ('999_forged.sql')",
    "UPDATE chain_format SET full_from = 0",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "SET session_replication_role = replica",
]


@pytest.mark.parametrize("sql", ATTACKS)
async def test_the_services_role_cannot_change_the_history_or_the_schema(
        embedded: EmbeddedPostgres, service: asyncpg.Connection, sql: str) -> None:
    async with service.transaction():
        await eventstore.append(service, [_new_event()])  # something to update, delete or truncate
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with service.transaction():
            await service.execute(sql)


async def test_the_services_role_appends_reads_and_keeps_its_own_state(
        embedded: EmbeddedPostgres, service: asyncpg.Connection) -> None:
    event = _new_event()
    async with service.transaction():
        stored = (await eventstore.append(service, [event])).stored
    assert len(stored) == 1
    assert await service.fetchval("SELECT count(*) FROM events WHERE seq = $1", stored[0].seq) == 1
    async with service.transaction():  # service state tables: full row access
        await service.execute("INSERT INTO relay_position(name, seq) VALUES ($1, 0)", unique("relay"))
        await service.execute("UPDATE relay_position SET seq = 1 WHERE seq = 0")
        await service.execute("DELETE FROM relay_position WHERE seq = 1")
    facts = await service.fetchrow("SELECT current_user AS who, usesuper, "
                                   "(SELECT tableowner FROM pg_tables WHERE tablename = 'events') AS owner "
                                   "FROM pg_user WHERE usename = current_user")
    assert facts["who"] == "casefeedback_service" and not facts["usesuper"]
    assert facts["owner"] == "casefeedback_owner"


async def test_migrations_run_as_an_owner_that_is_no_superuser(embedded: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(embedded.url)
    try:
        assert await conn.fetchval("SELECT usesuper FROM pg_user WHERE usename = current_user") is False
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("COPY (SELECT 1) TO PROGRAM 'true'")
    finally:
        await conn.close()
    assert await db.migrate(embedded.url) == []  # and the services' role finds nothing to apply
    assert await db.migrate(embedded.service_url) == []


async def test_the_services_role_cannot_migrate_a_new_database_and_is_told_who_can(
        embedded: EmbeddedPostgres) -> None:
    from services.common.errors import InfrastructureError

    name = unique("fresh").replace("-", "_")
    embedded.create_database(name)
    with pytest.raises(InfrastructureError, match="`casefeedback migrate` with CASEFEEDBACK_MIGRATION_DATABASE_URL"):
        await db.migrate(embedded.url_for("casefeedback_service", name))
    assert "001_event_store.sql" in await db.migrate(embedded.url_for("casefeedback_owner", name))
    assert await db.migrate(embedded.url_for("casefeedback_service", name)) == []


def _new_event() -> NewEvent:
    body = cloudevent("complaint.received", unique("case"), datetime(2011, 1, 3, 10, tzinfo=timezone.utc).isoformat(),
                      {"service_area": "community_care", "channel": "phone", "stage": "level1", "serious": False,
                       "procedure": "dundee-2011", "themes": []})
    return NewEvent(body, canonical(body))


@pytest.fixture(autouse=True, scope="module")
def _no_stray_file() -> Iterator[None]:
    yield
    assert not Path("/tmp/casefeedback-pwned").exists(), "COPY TO PROGRAM ran a shell command"


def test_ups_run_file_and_logs_are_readable_by_their_owner_only(settings: Settings, tmp_path: Path) -> None:
    from dataclasses import replace

    from services.cli import up

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "logs").mkdir(mode=0o755)  # left by an older run, readable by all
    (home / "logs" / "intake.log").write_text("old\n")
    (home / "logs" / "intake.log").chmod(0o644)
    log_dir = up._private_home(replace(settings, home=home))
    up._write_run_file(replace(settings, home=home), [], log_dir)
    up._open_log(log_dir, "intake").close()
    assert (_mode(home), _mode(log_dir)) == (0o700, 0o700)
    assert _mode(home / "run.json") == 0o600 and _mode(log_dir / "intake.log") == 0o600
    assert "migration_database_url" in (home / "run.json").read_text()


# --- one role per job -----------------------------------------------------------------------------

REFUSED = "42501"  # insufficient_privilege: a grant, or a trigger on the role, refused it
JOBS = ("intake", "escalation", "learning", "metrics", "relay", "erasure")
ROLES = (*JOBS, "reader", "service")


def _role(job: str) -> str:
    return f"casefeedback_{job}"


async def _as(embedded: EmbeddedPostgres, job: str) -> asyncpg.Connection:
    return await asyncpg.connect(embedded.url_for(_role(job)))


class _RollBack(Exception):
    """Raised to roll a statement that succeeded back (a test's write leaves nothing behind)."""


async def _refused(conn: asyncpg.Connection, sql: str, *args: object) -> str:
    """The SQLSTATE the statement fails with, or "done"; rolled back either way."""
    try:
        async with conn.transaction():
            await conn.execute(sql, *args)
            raise _RollBack
    except asyncpg.PostgresError as exc:
        return str(exc.sqlstate)
    except _RollBack:
        return "done"


async def _append_refused(conn: asyncpg.Connection, event: NewEvent) -> str:
    """The SQLSTATE `eventstore.append` fails with: a correctly computed chain link, as an attacker computes it."""
    try:
        async with conn.transaction():
            await eventstore.append(conn, [event])
    except asyncpg.PostgresError as exc:
        return str(exc.sqlstate)
    return "appended"


def _event(type_: str, source: str, data: dict[str, object] | None = None, subject: str | None = None) -> NewEvent:
    body = cloudevent(type_, subject or unique("case"), "2026-03-02T10:00:00+00:00", data or {}, source=source)
    return NewEvent(body, canonical(body))


FORGED_RESPONSE = ("complaint.responded", "crm/east", {"stage": "stage1", "outcome": "upheld"})
DERIVED = {"escalation": ("deadline.met", "casefeedback/escalation"),
           "learning": ("learning.stage.opened", "casefeedback/learning")}


@pytest.mark.parametrize("job", ["metrics", "relay", "learning", "escalation", "erasure", "reader"])
async def test_only_intake_appends_a_complaint_response_from_a_crm(embedded: EmbeddedPostgres, job: str) -> None:
    conn = await _as(embedded, job)
    try:
        type_, source, data = FORGED_RESPONSE
        assert await _append_refused(conn, _event(type_, source, data)) == REFUSED
    finally:
        await conn.close()


@pytest.mark.parametrize(("job", "type_", "source"), [
    ("intake", "deadline.met", "casefeedback/escalation"),  # a derived type, even under the project's source
    ("intake", "complaint.received", "casefeedback/intake"),  # an inbound type under the project's source
    ("intake", "complaint.received", "CaseFeedback/crm"),
    ("intake", "erasure.recorded", "casefeedback/audit"),
    ("escalation", "complaint.received", "crm/east"),  # escalation cannot append an inbound type
    ("escalation", "deadline.met", "casefeedback/learning"),  # nor under another service's source
    ("escalation", "learning.stage.opened", "casefeedback/escalation"),
    ("learning", "deadline.met", "casefeedback/escalation"),
    ("learning", "complaint.closed", "casefeedback/learning"),
    ("erasure", "deadline.met", "casefeedback/audit"),
    ("erasure", "complaint.received", "crm/east"),
])
async def test_a_job_appends_only_its_own_types_under_its_own_source(
        embedded: EmbeddedPostgres, job: str, type_: str, source: str) -> None:
    conn = await _as(embedded, job)
    try:
        assert await _append_refused(conn, _event(type_, source)) == REFUSED
    finally:
        await conn.close()


@pytest.mark.parametrize(("job", "type_", "source"), [
    ("intake", "complaint.responded", "crm/east"),
    ("intake", "survey.response.submitted", "surveys/web"),
    ("escalation", "deadline.scheduled", "casefeedback/escalation"),
    ("escalation", "deadline.breach_withdrawn", "casefeedback/escalation"),
    ("learning", "deadline.breach_withdrawn", "casefeedback/learning"),
    ("learning", "learning.stage.opened", "casefeedback/learning"),
    ("erasure", "erasure.recorded", "casefeedback/audit"),
    ("service", "deadline.met", "casefeedback/escalation"),  # the single role does every job
    ("service", "complaint.received", "crm/east"),
])
async def test_a_job_appends_its_own_types(embedded: EmbeddedPostgres, job: str, type_: str, source: str) -> None:
    conn = await _as(embedded, job)
    try:
        assert await _append_refused(conn, _event(type_, source)) == "appended"
    finally:
        await conn.close()


async def _insert_link(conn: asyncpg.Connection, body: dict[str, object], columns: dict[str, object],
                       seq_ahead: int = 1, prev: bytes | None = None) -> str:
    """Insert one events row by hand after the head (its columns overridden by `columns`); the SQLSTATE."""
    async with conn.transaction():
        head = await conn.fetchrow("SELECT seq, hash FROM chain_head FOR UPDATE")
    text = canonical(body).decode()
    row = {"seq": head["seq"] + seq_ahead, "id": body["id"], "subject": body["subject"], "version": 1,
           "type": body["type"], "source": body["source"], "time": datetime.now(timezone.utc),
           "recorded_at": datetime.now(timezone.utc), "body": text, "digest": bytes(32),
           "prev_hash": prev if prev is not None else bytes(head["hash"]), "hash": bytes(32), **columns}
    names = ", ".join(row)
    marks = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    return await _refused(conn, f"INSERT INTO events ({names}) VALUES ({marks})", *row.values())


async def test_an_appended_row_must_say_what_its_body_says_and_link_to_the_head(embedded: EmbeddedPostgres) -> None:
    for job in ("intake", "service"):
        conn = await _as(embedded, job)
        try:
            body = cloudevent("complaint.received", unique("case"), "2026-03-02T10:00:00+00:00", {}, source="crm/e")
            disguised = dict(body, type="deadline.met", source="casefeedback/escalation")  # what readers parse
            assert await _insert_link(conn, disguised, {"type": "complaint.received", "source": "crm/e"}) == REFUSED
            assert await _insert_link(conn, body, {}, seq_ahead=5) == REFUSED  # a gap
            assert await _insert_link(conn, body, {}, prev=bytes(range(32))) == REFUSED  # a fork
            assert await _insert_link(conn, body, {}) == "done"  # the next link, as it is (rolled back)
        finally:
            await conn.close()


@pytest.mark.parametrize("job", ROLES)
async def test_nobody_but_an_append_moves_the_chain_head(embedded: EmbeddedPostgres, job: str) -> None:
    conn = await _as(embedded, job)
    try:
        assert await _refused(conn, "UPDATE chain_head SET seq = seq + 1") == REFUSED
        assert await _refused(conn, "UPDATE chain_head SET hash = $1", bytes(32)) == REFUSED
        assert await _refused(conn, "UPDATE chain_head SET seq = 0") == REFUSED
        assert await _refused(conn, "DELETE FROM chain_head") == REFUSED
    finally:
        await conn.close()


@pytest.mark.parametrize("job", ROLES)
async def test_nobody_but_the_owner_creates_objects_or_erases(embedded: EmbeddedPostgres, job: str) -> None:
    conn = await _as(embedded, job)
    try:
        assert await _refused(conn, "CREATE FUNCTION pg_temp.now() RETURNS timestamptz LANGUAGE sql "
                                    "AS 'SELECT ''2000-01-01''::timestamptz'") == REFUSED
        assert await _refused(conn, "CREATE TEMP TABLE events (x int)") == REFUSED
        assert await _refused(conn, "CREATE TABLE x ()") == REFUSED
        assert await _refused(conn, "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'") == REFUSED
        if job not in ("erasure", "service"):
            assert await _refused(conn, "SELECT erase_event(1, '{}', ARRAY['data.x'], 'x')") == REFUSED
    finally:
        await conn.close()


# Writes each job must not make: every other service's tables, rows of the shared tables not its own.
FOREIGN_WRITES: dict[str, list[str]] = {
    "intake": ["DELETE FROM escalation_cases", "DELETE FROM metrics_buckets", "DELETE FROM relay_position",
               "UPDATE learning_cases SET open = false", "UPDATE procedure_documents SET version = version",
               "DELETE FROM intake_cases", "INSERT INTO consumer_positions VALUES ('casefeedback-intake', 't', 0, 1)"],
    "escalation": ["DELETE FROM learning_cases", "DELETE FROM escalation_cases", "DELETE FROM intake_held",
                   "UPDATE intake_cases SET acts = '[]'", "DELETE FROM metrics_surveys",
                   "UPDATE relay_position SET seq = 0",
                   "INSERT INTO deadlines VALUES ('learning', 's', 'k', 0, 'st', 'k', now(), 'open', false)",
                   "UPDATE deadlines SET due = due WHERE owner = 'learning'",
                   "INSERT INTO consumer_positions VALUES ('casefeedback-metrics', 't', 0, 1)",
                   "UPDATE consumer_positions SET seq = 0 WHERE grp = 'casefeedback-learning'"],
    "learning": ["DELETE FROM escalation_cases", "UPDATE escalation_cases SET open = false",
                 "INSERT INTO deadlines VALUES ('escalation', 's', 'k', 0, 'st', 'k', now(), 'open', false)",
                 "UPDATE deadlines SET due = due WHERE owner = 'escalation'", "DELETE FROM deadlines",
                 "DELETE FROM metrics_buckets", "INSERT INTO consumer_positions VALUES ('casefeedback-escalation', "
                                                "'t', 0, 1)"],
    "metrics": ["DELETE FROM escalation_cases", "DELETE FROM learning_cases", "DELETE FROM deadlines",
                "DELETE FROM intake_held", "DELETE FROM intake_cases", "UPDATE relay_position SET seq = 0",
                "INSERT INTO procedure_documents VALUES ('k', 'i', 1, '{}')",
                "UPDATE consumer_positions SET seq = 0 WHERE grp = 'casefeedback-escalation'",
                "DELETE FROM consumer_positions"],
    "relay": ["DELETE FROM escalation_cases", "DELETE FROM metrics_buckets", "DELETE FROM intake_held",
              "UPDATE deadlines SET due = due", "DELETE FROM relay_position",
              "INSERT INTO consumer_positions VALUES ('casefeedback-relay', 't', 0, 1)",
              "UPDATE consumer_positions SET seq = 0"],
    "erasure": ["DELETE FROM escalation_cases", "DELETE FROM intake_held", "UPDATE learning_cases SET open = false",
                "UPDATE intake_held SET awaits = 'x'", "DELETE FROM metrics_buckets",
                "UPDATE relay_position SET seq = 0", "UPDATE consumer_positions SET seq = 0"],
    "reader": ["DELETE FROM escalation_cases", "UPDATE relay_position SET seq = 0", "DELETE FROM metrics_buckets",
               "INSERT INTO intake_cases VALUES ('s', '[]')"],
    "service": ["DELETE FROM role_jobs", "INSERT INTO event_writers VALUES ('metrics', '', 'complaint.responded')"],
}


# What this module's rows leave behind in the session's shared server, taken away when the module ends: the
# services' own tests (the deadline tick, replay) read these tables and must not meet the scene's dummy rows.
CLEANUP = ["DELETE FROM deadlines WHERE stage = 'st' AND kind = 'k'",
           "DELETE FROM escalation_cases WHERE state = '{}'::jsonb",
           "DELETE FROM learning_cases WHERE state = '{}'::jsonb",
           "DELETE FROM consumer_positions WHERE topic IN ('t', 'own')",
           "DELETE FROM relay_position WHERE name LIKE 'relay-%' OR name = 'own-relay'",
           "DELETE FROM intake_cases WHERE acts = '[]'::jsonb",
           "DELETE FROM metrics_buckets WHERE kind IN ('k', 'own')",
           "DELETE FROM metrics_surveys WHERE definition = '{}'::jsonb", "DELETE FROM intake_held WHERE awaits = 'a'",
           "DELETE FROM procedure_documents WHERE key = 'own-e'"]


@pytest.fixture(scope="module")
async def shared_rows(embedded: EmbeddedPostgres) -> AsyncIterator[None]:
    """A row of each job in each table the jobs share, and in each service's own tables (so a refused write has
    something to refuse); removed again when the module's tests are done."""
    await _scene(embedded)
    yield
    conn = await asyncpg.connect(embedded.url)
    try:
        for sql in CLEANUP:
            await conn.execute(sql)
    finally:
        await conn.close()


async def _scene(embedded: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(embedded.url)  # the owner sets the scene
    try:
        for owner in ("escalation", "learning"):
            await conn.execute("INSERT INTO deadlines VALUES ($1, $2, 'k', 0, 'st', 'k', now(), 'open', false) "
                               "ON CONFLICT DO NOTHING", owner, unique("s"))
        for table in ("escalation_cases", "learning_cases"):
            await conn.execute(f"INSERT INTO {table} (subject, partition, last_seq, open, stage, service_area, state) "
                               "VALUES ($1, 0, 0, true, 's', 'a', '{}')", unique("s"))
        for grp in ("casefeedback-escalation", "casefeedback-learning", "casefeedback-metrics"):
            await conn.execute("INSERT INTO consumer_positions VALUES ($1, 't', 0, 1) ON CONFLICT DO NOTHING", grp)
        await conn.execute("INSERT INTO relay_position VALUES ($1, 0)", unique("relay"))
        await conn.execute("INSERT INTO intake_cases VALUES ($1, '[]')", unique("s"))
        await conn.execute("INSERT INTO metrics_buckets VALUES ('g', 0, 'k', '{}', 1, 1)")
        await conn.execute("INSERT INTO metrics_surveys VALUES ($1, 0, 1, '{}')", unique("survey"))
        await conn.execute("INSERT INTO intake_held (id, awaits, digest, body, raw, topic, partition, \"offset\", "
                           "record_time, held_at, hold_until) VALUES ($1, 'a', '', '{}', '', 't', 0, 0, now(), now(), "
                           "now() + interval '1 day')", unique("held"))
    finally:
        await conn.close()


@pytest.mark.parametrize(("job", "sql"), [(job, sql) for job, sqls in FOREIGN_WRITES.items() for sql in sqls])
async def test_a_job_writes_no_table_and_no_row_of_another(
        embedded: EmbeddedPostgres, shared_rows: None, job: str, sql: str) -> None:
    conn = await _as(embedded, job)
    try:
        assert await _refused(conn, sql) == REFUSED
    finally:
        await conn.close()


# Writes each job makes (its own tables, its own rows of the shared ones).
OWN_WRITES: dict[str, list[str]] = {
    "intake": ["INSERT INTO intake_cases VALUES ('own-intake', '[]') ON CONFLICT (subject) DO UPDATE SET acts = '[]'",
               "DELETE FROM intake_held WHERE hold_until < now() - interval '1000 years'"],
    "escalation": ["INSERT INTO deadlines VALUES ('escalation', 'own-e', 'k', 0, 'st', 'k', now(), 'open', false) "
                   "ON CONFLICT (owner, subject, key) DO UPDATE SET due = EXCLUDED.due",
                   "UPDATE escalation_cases SET open = open",
                   "INSERT INTO procedure_documents VALUES ('own-e', 'i', 1, '{}') ON CONFLICT DO NOTHING",
                   "INSERT INTO consumer_positions VALUES ('casefeedback-escalation', 'own', 0, 1) "
                   "ON CONFLICT (grp, topic, partition) DO UPDATE SET seq = 2"],
    "learning": ["INSERT INTO deadlines VALUES ('learning', 'own-l', 'k', 0, 'st', 'k', now(), 'open', false) "
                 "ON CONFLICT (owner, subject, key) DO UPDATE SET due = EXCLUDED.due",
                 "UPDATE learning_cases SET open = open",
                 "UPDATE consumer_positions SET seq = seq WHERE grp = 'casefeedback-learning'"],
    "metrics": ["INSERT INTO metrics_buckets VALUES ('casefeedback-metrics', 0, 'own', '{}', 1, 1)",
                "DELETE FROM metrics_buckets WHERE kind = 'own'", "UPDATE metrics_surveys SET seq = seq",
                "INSERT INTO consumer_positions VALUES ('casefeedback-metrics-own', 'own', 0, 1)"],
    "relay": ["INSERT INTO relay_position VALUES ('own-relay', 0) ON CONFLICT (name) DO NOTHING",
              "UPDATE relay_position SET seq = seq"],
    "erasure": ["UPDATE intake_held SET body = body, raw = raw, digest = digest",
                "UPDATE learning_cases SET state = state"],
}


@pytest.mark.parametrize(("job", "sql"), [(job, sql) for job, sqls in OWN_WRITES.items() for sql in sqls])
async def test_a_job_writes_its_own_tables(embedded: EmbeddedPostgres, shared_rows: None, job: str, sql: str) -> None:
    conn = await _as(embedded, job)
    try:
        assert await _refused(conn, sql) == "done"
        assert await conn.fetchval("SELECT current_user") == _role(job)
    finally:
        await conn.close()


async def test_the_roles_own_nothing_and_migrating_as_one_applies_nothing(embedded: EmbeddedPostgres) -> None:
    for job in ROLES:
        conn = await _as(embedded, job)
        try:
            owned = await conn.fetchval("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                                        "WHERE r.rolname = current_user")
            assert owned == 0 and not await conn.fetchval("SELECT usesuper FROM pg_user WHERE usename = current_user")
        finally:
            await conn.close()
        assert await db.migrate(embedded.url_for(_role(job))) == []


async def test_intakes_rules_name_every_inbound_type_and_nothing_else(embedded: EmbeddedPostgres) -> None:
    from schemas.registry import INBOUND_TYPES

    conn = await _as(embedded, "reader")
    try:
        rows = await conn.fetch("SELECT source, type FROM event_writers WHERE job = 'intake'")
    finally:
        await conn.close()
    assert {r["source"] for r in rows} == {""} and sorted(r["type"] for r in rows) == sorted(INBOUND_TYPES)


def test_up_gives_each_child_its_own_jobs_url_and_no_other(settings: Settings,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from services.cli import up

    monkeypatch.setenv("DATABASE_URL", "postgresql://casefeedback_service@db/casefeedback")
    monkeypatch.setenv("CASEFEEDBACK_ESCALATION_DATABASE_URL", "postgresql://casefeedback_escalation@db/casefeedback")
    urls = {job: f"postgresql://casefeedback_{job}:pw@db/casefeedback" for job in JOBS}
    running = replace(settings, database_url="postgresql://casefeedback_reader@db/casefeedback",
                      job_database_urls=urls)
    for service in ("intake", "escalation", "learning", "metrics", "relay"):
        env = up._env(running, service, 1234, "127.0.0.1")
        given = {k: v for k, v in env.items() if "DATABASE_URL" in k}
        assert given == {f"CASEFEEDBACK_{service.upper()}_DATABASE_URL": urls[service]}, service


async def test_a_worker_connects_as_its_services_role(embedded: EmbeddedPostgres, settings: Settings) -> None:
    from dataclasses import replace

    from services.metrics.worker import MetricsWorker
    from tests.helpers import running

    own = replace(settings, database_url=embedded.service_url, job_database_urls=embedded.job_urls(),
                  migration_database_url=embedded.url)
    async with running(MetricsWorker, own) as runtime:
        assert runtime.loop is not None
        conn = await asyncpg.connect(embedded.service_url)
        try:
            users = {r["usename"] for r in await conn.fetch("SELECT usename FROM pg_stat_activity")}
        finally:
            await conn.close()
    assert {"casefeedback_metrics", "casefeedback_relay"} <= users


async def test_erase_runs_as_the_erasure_role_and_no_other_role_can(
        embedded: EmbeddedPostgres, settings: Settings) -> None:
    from dataclasses import replace

    from services.audit.erasure import ErasureError
    from services.cli.erase import erase_subjects

    subject = unique("case")
    body = cloudevent("complaint.received", subject, "2026-03-02T10:00:00+00:00",
                      {"service_area": "housing", "channel": "phone", "stage": "stage1", "serious": False,
                       "complainant_ref": "ref-1", "themes": []})
    conn = await _as(embedded, "intake")
    try:
        async with conn.transaction():
            await eventstore.append(conn, [NewEvent(body, canonical(body))])
    finally:
        await conn.close()
    for job in ("metrics", "intake", "reader"):
        as_other = replace(settings, database_url=None, job_database_urls={"erasure": embedded.url_for(_role(job))})
        with pytest.raises(ErasureError, match="refused"):
            await erase_subjects(as_other, [subject], "erasure request T-1")
    as_erasure = replace(settings, database_url=None, job_database_urls={"erasure": embedded.url_for(_role("erasure"))})
    [done] = await erase_subjects(as_erasure, [subject], "erasure request T-1")
    assert done.events == 1 and done.erasure_id is not None
