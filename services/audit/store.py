"""The audit's database adapter: reads the history for reports and replay; asyncpg stays in here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg

from services.common.errors import InfrastructureError


async def connect(url: str) -> asyncpg.Connection:
    """One connection to the history's database, or a clear error."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(url)
        return conn
    except (OSError, asyncpg.PostgresError) as exc:
        raise InfrastructureError(f"database not reachable: {exc}") from None


async def bodies_until(conn: asyncpg.Connection, until: datetime | None = None, batch: int = 5000,
                       recorded_by: datetime | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """Event bodies in history order, in batches: event time at or before `until`, and (when given)
    recorded at or before `recorded_by`, so a published report can be reproduced exactly."""
    after = 0
    while True:
        rows = await conn.fetch(
            "SELECT seq, body::text AS body FROM events WHERE seq > $1 "
            "AND ($3::timestamptz IS NULL OR time <= $3) AND ($4::timestamptz IS NULL OR recorded_at <= $4) "
            "ORDER BY seq LIMIT $2", after, batch, until, recorded_by)
        if not rows:
            return
        yield [json.loads(r["body"]) for r in rows]
        after = rows[-1]["seq"]
