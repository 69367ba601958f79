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
