"""Learning's database adapters: its live state (for replay), held events, the gauges' query."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from services.learning import codec
from services.learning.domain import CaseLearning

TABLE = "learning_cases"
OWNER = "learning"


async def load_live_state(conn: asyncpg.Connection) -> dict[str, CaseLearning]:
    """Every case's live learning state, to compare with a replay's `decide` fold over the history."""
    rows = await conn.fetch(f"SELECT subject, state::text AS state FROM {TABLE}")
    return {r["subject"]: codec.decode(json.loads(r["state"])) for r in rows}


async def mark_held(conn: asyncpg.Connection, subjects: list[str], expires: datetime) -> None:
    """Set when each case's held events expire (none held: no expiry); a new hold restarts the grace."""
    await conn.execute(
        f"UPDATE {TABLE} SET held_until = CASE WHEN jsonb_array_length(state->'held') = 0 THEN NULL "
        "ELSE $2::timestamptz END WHERE subject = any($1::text[])", subjects, expires)


async def expired_holds(conn: asyncpg.Connection, partitions: list[int], now: datetime,
                        limit: int = 200) -> list[tuple[str, int, CaseLearning]]:
    """Cases whose held events' grace has passed (locked, skipping cases in use)."""
    rows = await conn.fetch(
        f"SELECT subject, partition, state::text AS state FROM {TABLE} WHERE held_until <= $1 "
        "AND partition = any($2::int[]) ORDER BY held_until LIMIT $3 FOR UPDATE SKIP LOCKED", now, partitions, limit)
    return [(r["subject"], r["partition"], codec.decode(json.loads(r["state"]))) for r in rows]


async def save_dropped(conn: asyncpg.Connection, subject: str, state: CaseLearning) -> None:
    """Store a case after its held events were dead-lettered."""
    await conn.execute(f"UPDATE {TABLE} SET state = $2::jsonb, held_until = NULL WHERE subject = $1",
                       subject, json.dumps(codec.encode(state)))


async def stage_counts(conn: asyncpg.Connection, partitions: list[int]) -> tuple[int, int]:
    """Open learning stages and those of them overdue, on the given partitions."""
    row = await conn.fetchrow(
        "SELECT count(*) AS open, count(*) FILTER (WHERE breached) AS overdue FROM deadlines "
        "WHERE owner = $1 AND status = 'open' AND partition = any($2::int[])", OWNER, partitions)
    return int(row["open"]), int(row["overdue"])


async def redact_held(conn: asyncpg.Connection, subject: str,
                      redact: Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]]) -> int:
    """Erase the erasable fields of the learning events the case holds (its state); how many changed."""
    row = await conn.fetchrow(f"SELECT state::text AS state FROM {TABLE} WHERE subject = $1 FOR UPDATE", subject)
    if row is None:
        return 0
    state = json.loads(row["state"])
    redacted = [redact(body) for body in state.get("held", [])]
    changed = sum(1 for _, fields in redacted if fields)
    if changed:
        state["held"] = [body for body, _ in redacted]
        await conn.execute(f"UPDATE {TABLE} SET state = $2::jsonb WHERE subject = $1", subject, json.dumps(state))
    return changed
