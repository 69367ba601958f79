"""The database adapter: connection pools and migrations; asyncpg errors stay in here."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg

from services.common.errors import InfrastructureError

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number serves; it serialises concurrent migrators across processes.
MIGRATION_LOCK = 7_031_965


async def create_pool(url: str, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """A pool on `url`; TLS comes from the URL (sslmode=...) or the PG* environment, as libpq does."""
    for attempt in range(40):
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, command_timeout=60)
            assert pool is not None
            return pool
        except (OSError, asyncpg.PostgresError) as exc:
            if attempt == 39:
                raise InfrastructureError(f"database not reachable: {exc}") from None
            await asyncio.sleep(0.25)
    raise InfrastructureError("database not reachable")


async def migrate(url: str) -> list[str]:
    """Apply every migration not applied yet, in file-name order; return those applied now."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations(name) VALUES ($1)", path.name)
            applied.append(path.name)
            log.info("applied migration %s", path.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await conn.close()
