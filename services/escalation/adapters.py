"""Escalation's database adapters: its live state (for replay) and the gauges' queries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import asyncpg

from services.escalation import codec, domain
from services.escalation.domain import CaseState

TABLE = "escalation_cases"
OWNER = "escalation"
WINDOWS = {"30d": timedelta(days=30), "90d": timedelta(days=90), "365d": timedelta(days=365)}


async def load_live_state(conn: asyncpg.Connection) -> dict[str, CaseState]:
    """Every case's live state, to compare with a replay's `decide` fold over the history."""
    rows = await conn.fetch(f"SELECT subject, state::text AS state FROM {TABLE}")
    return {r["subject"]: codec.decode(json.loads(r["state"])) for r in rows}


async def open_counts(conn: asyncpg.Connection, partitions: list[int]) -> list[asyncpg.Record]:
    """Open complaints by stage and service area on the given partitions."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT stage, service_area, count(*) AS n FROM {TABLE} WHERE open AND partition = any($1::int[]) "
        "GROUP BY stage, service_area", partitions)
    return rows


async def overdue_counts(conn: asyncpg.Connection, partitions: list[int]) -> list[asyncpg.Record]:
    """Open, breached deadlines by stage and kind on the given partitions."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT stage, kind, count(*) AS n FROM deadlines WHERE owner = $1 AND status = 'open' AND breached "
        "AND partition = any($2::int[]) GROUP BY stage, kind", OWNER, partitions)
    return rows


async def timeliness(conn: asyncpg.Connection, partitions: list[int], now: datetime) -> list[asyncpg.Record]:
    """Per stage, kind and window: deadlines that fell due in the window (not cancelled) and how many were met."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT w.name AS window, d.stage, d.kind, count(*) AS counted, "
        "count(*) FILTER (WHERE d.status = 'met' AND NOT d.late) AS met "
        "FROM deadlines d JOIN unnest($3::text[], $4::interval[]) AS w(name, span) "
        "ON d.due > $2::timestamptz - w.span AND d.due <= $2::timestamptz "
        "WHERE d.owner = $1 AND d.status <> 'cancelled' AND d.partition = any($5::int[]) "
        "GROUP BY w.name, d.stage, d.kind", OWNER, now, list(WINDOWS), list(WINDOWS.values()), partitions)
    return rows


async def breaches_after(conn: asyncpg.Connection, after: int) -> tuple[int, list[asyncpg.Record]]:
    """The breaches this service recorded in the history after seq `after`, by partition, stage and kind;
    and the seq read up to (every event at or below it is committed: appends commit in seq order)."""
    upto = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM events"))
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT c.partition, e.body->'data'->>'stage' AS stage, e.body->'data'->>'kind' AS kind, count(*) AS n "
        f"FROM events e JOIN {TABLE} c ON c.subject = e.subject WHERE e.type = 'deadline.breached' "
        "AND e.source = $1 AND e.seq > $2 AND e.seq <= $3 GROUP BY 1, 2, 3", domain.SOURCE, after, upto)
    return upto, rows
