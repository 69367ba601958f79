"""The audit's database adapter: reads the history for reports and replay; asyncpg stays in here."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from schemas.registry import TOPIC_EVENTS
from services.common import positions
from services.common.errors import InfrastructureError
from services.deadlines.store import CASE_TABLES

SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")  # what pg_export_snapshot() returns


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


@asynccontextmanager
async def snapshot(conn: asyncpg.Connection, exported: str | None = None) -> AsyncIterator[None]:
    """One consistent view of the database for everything read inside: a read-only REPEATABLE READ transaction,
    on the snapshot another session `exported` when given (a parallel replay's shards share their reader's).

    Inside a transaction the caller opened, that transaction is the view.
    """
    if conn.is_in_transaction():
        yield
        return
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        if exported is not None:
            if not SNAPSHOT_ID.fullmatch(exported):
                raise ValueError(f"not a snapshot id: {exported!r}")
            try:  # a statement of its own: it takes no parameters, and must come first in the transaction
                await conn.execute(f"SET TRANSACTION SNAPSHOT '{exported}'")
            except asyncpg.PostgresError as exc:
                raise InfrastructureError(f"cannot share the replay's snapshot {exported}: {exc}") from None
        yield


async def export_snapshot(conn: asyncpg.Connection) -> str:
    """The id of the open transaction's snapshot, for other sessions to read the same view (`snapshot`)."""
    return str(await conn.fetchval("SELECT pg_export_snapshot()"))


async def applied_seqs(conn: asyncpg.Connection, group: str, partitions: int) -> dict[int, int]:
    """The last history seq the consumer group applied on each partition of `casefeedback.events` (0: none)."""
    stored = await positions.load(conn, group, TOPIC_EVENTS, range(partitions))
    return {partition: seq for partition, (seq, _) in stored.items()}


async def case_partitions(conn: asyncpg.Connection, table: str, limit: int) -> list[tuple[str, int]]:
    """Up to `limit` cases of a case table with the partition the service stored them on."""
    if table not in CASE_TABLES:
        raise ValueError(f"not a case table: {table}")
    rows = await conn.fetch(f"SELECT subject, partition FROM {table} ORDER BY subject LIMIT $1", limit)
    return [(r["subject"], int(r["partition"])) for r in rows]
