"""Escalation's database adapters: its live state (for replay) and the gauges' queries."""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg

from services.escalation import codec, domain
from services.escalation.domain import CaseState

TABLE = "escalation_cases"
OWNER = "escalation"


async def load_live_state(conn: asyncpg.Connection) -> dict[str, CaseState]:
    """Every case's live state, to compare with a replay's `decide` fold over the history."""
    rows = await conn.fetch(f"SELECT subject, state::text AS state FROM {TABLE}")
    return {r["subject"]: codec.decode(json.loads(r["state"])) for r in rows}


async def open_counts(conn: asyncpg.Connection, partitions: list[int]) -> list[asyncpg.Record]:
    """Complaints whose status is open or suspended (contract 11.1) by stage and service area on the partitions."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT stage, service_area, count(*) AS n FROM {TABLE} WHERE open AND partition = any($1::int[]) "
        "AND coalesce(state->>'status', 'open') IN ('open', 'suspended') GROUP BY stage, service_area", partitions)
    return rows


async def overdue_counts(conn: asyncpg.Connection, partitions: list[int]) -> list[asyncpg.Record]:
    """Open, breached deadlines by procedure version (the case's), stage and kind on the given partitions."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT c.state->>'procedure' AS procedure, d.stage, d.kind, count(*) AS n FROM deadlines d "
        f"JOIN {TABLE} c ON c.subject = d.subject WHERE d.owner = $1 AND d.status = 'open' AND d.breached "
        "AND d.partition = any($2::int[]) GROUP BY 1, 2, 3", OWNER, partitions)
    return rows


async def deadlines_due_since(conn: asyncpg.Connection, partitions: list[int], since: datetime) -> list[asyncpg.Record]:
    """Every deadline (stage, kind, due, met_at, breached) of the cases on the given partitions that is due
    at or after `since`, as the case's state holds it (a deadline settles at or before its due instant,
    so these are all that can count for timeliness in a window starting at `since`)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT d->>'stage' AS stage, d->>'kind' AS kind, (d->>'due')::timestamptz AS due, "
        "(d->>'met_at')::timestamptz AS met_at, (d->>'breached')::boolean AS breached "
        f"FROM {TABLE} c CROSS JOIN LATERAL jsonb_array_elements(c.state->'deadlines') AS d "
        "WHERE c.partition = any($3::int[]) AND (d->>'due')::timestamptz >= $2 AND c.subject IN "
        "(SELECT subject FROM deadlines WHERE owner = $1 AND due >= $2 AND partition = any($3::int[]))",
        OWNER, since, partitions)
    return rows


async def received_since(conn: asyncpg.Connection, partitions: list[int], since: datetime) -> list[asyncpg.Record]:
    """The complaints on the given partitions received at or after `since` (the first `complaint.received`
    of each, as escalation takes it): service area, latest outcome (null: none) and time received."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT c.service_area, c.state->>'outcome' AS outcome, c.state->>'status' AS status, r.time AS received FROM "
        "(SELECT DISTINCT ON (subject) subject, time FROM events WHERE type = 'complaint.received' "
        f"AND time >= $1 ORDER BY subject, seq) AS r JOIN {TABLE} c ON c.subject = r.subject "
        "WHERE c.partition = any($2::int[])", since, partitions)
    return rows


BREACH_TYPES = ("deadline.breached", "deadline.breach_withdrawn")


async def breaches_after(conn: asyncpg.Connection, after: int) -> tuple[int, list[asyncpg.Record]]:
    """The breaches and breach withdrawals this service recorded in the history after seq `after`, by type,
    partition, procedure version (the case's), stage and kind;
    and the seq read up to (every event at or below it is committed: appends commit in seq order)."""
    upto = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM events"))
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT e.type, c.partition, c.state->>'procedure' AS procedure, e.body->'data'->>'stage' AS stage, "
        f"e.body->'data'->>'kind' AS kind, count(*) AS n FROM events e JOIN {TABLE} c ON c.subject = e.subject "
        "WHERE e.type = any($4::text[]) AND e.source = $1 AND e.seq > $2 AND e.seq <= $3 GROUP BY 1, 2, 3, 4, 5",
        domain.SOURCE, after, upto, list(BREACH_TYPES))
    return upto, rows
