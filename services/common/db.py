"""The database adapter: connection pools and migrations; asyncpg errors stay in here."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import asyncpg

from services.common.errors import InfrastructureError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number serves; it serialises concurrent migrators across processes.
MIGRATION_LOCK = 7_031_965
# How long a process starting up waits for its database before giving up with a clear message.
CONNECT_WAIT_S = 10.0
# Errors that mean the server is gone for now (down, restarting, shutting down, the connection lost), not a fault.
OUTAGES: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError, asyncpg.exceptions.ConnectionDoesNotExistError,
)


def unavailable(exc: BaseException) -> str | None:
    """'database unreachable: ...' when `exc` means the database is gone for now; None for any other error."""
    if isinstance(exc, InfrastructureError) and "database" in str(exc):
        return str(exc)
    if isinstance(exc, OUTAGES) or (isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)):
        return f"database unreachable: {type(exc).__name__}"
    return None


async def connect(url: str, wait_s: float = CONNECT_WAIT_S) -> asyncpg.Connection:
    """One connection, waiting up to `wait_s` for a database that is starting; InfrastructureError after."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await asyncpg.connect(url, timeout=5)
        except OUTAGES as exc:
            if time.monotonic() >= deadline:
                raise InfrastructureError(f"database not reachable ({_safe(url)}): {_describe(exc)}") from None
            await asyncio.sleep(0.25)


async def create_pool(url: str, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """A pool on `url`; TLS comes from the URL (sslmode=...) or the PG* environment, as libpq does."""
    await (await connect(url)).close()  # waits for a starting database, and says clearly when there is none
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=60)
    except OUTAGES as exc:
        raise InfrastructureError(f"database not reachable ({_safe(url)}): {_describe(exc)}") from None
    assert pool is not None
    return pool


async def close_pool(pool: asyncpg.Pool, timeout_s: float = 3.0) -> None:
    """Close the pool; when its server is gone, drop the connections instead of waiting on them."""
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except OUTAGES:  # includes the time-out
        pool.terminate()


async def probe(conn: asyncpg.Connection | None, url: str) -> asyncpg.Connection:
    """A live connection (the given one, or a new one) that just answered; raises an outage error if none."""
    if conn is None or conn.is_closed():
        conn = await asyncpg.connect(url, timeout=3)
    try:
        await conn.fetchval("SELECT 1", timeout=3)
    except BaseException:
        conn.terminate()
        raise
    return conn


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}{at}{host}" if at else url


async def _pending(conn: asyncpg.Connection) -> list[Path]:
    """Migrations not applied yet; creates nothing when none is pending, so a role that owns nothing may ask."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        await conn.execute("CREATE TABLE schema_migrations "
                           "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
    done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    return [path for path in sorted(MIGRATIONS.glob("*.sql")) if path.name not in done]


async def migrate(url: str) -> list[str]:
    """Apply every migration not applied yet, in file-name order; return those applied now."""
    conn = await connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        applied: list[str] = []
        try:
            for path in await _pending(conn):
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", path.name)
                applied.append(path.name)
                log.info("applied migration %s", path.name)
        except asyncpg.InsufficientPrivilegeError as exc:
            raise InfrastructureError(
                f"the database schema needs migrating, which {_safe(url)} may not do ({exc}); run "
                "`casefeedback migrate` with CASEFEEDBACK_MIGRATION_DATABASE_URL naming the schema owner"
            ) from None
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await conn.close()
