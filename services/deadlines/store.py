"""The database adapter of the deadline mechanism: case rows, the timer index, procedure documents.

Case tables (`escalation_cases`, `learning_cases`) share one shape: subject, partition,
last_seq, open, stage, service_area, state (JSON). Deadline rows are an index derived from the
state on every save, so the tick finds due work by `next_fire_at` without scanning cases.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.deadlines.procedures import Procedure, ProcedureBook
from services.deadlines.timers import Deadline

CASE_TABLES = ("escalation_cases", "learning_cases")


@dataclass(frozen=True)
class CaseRow:
    """A case as stored: its partition, how far its history is applied, and its state."""

    subject: str
    partition: int
    last_seq: int
    open: bool
    stage: str
    service_area: str
    state: dict[str, Any]


def _table(name: str) -> str:
    assert name in CASE_TABLES, name
    return name


async def load_cases(conn: asyncpg.Connection, table: str, subjects: Sequence[str], lock: bool = True,
                     skip_locked: bool = False) -> dict[str, CaseRow]:
    """The stored cases among `subjects`, row-locked for the transaction (optionally skipping locked ones)."""
    suffix = (" FOR UPDATE SKIP LOCKED" if skip_locked else " FOR UPDATE") if lock else ""
    rows = await conn.fetch(
        f"SELECT subject, partition, last_seq, open, stage, service_area, state::text AS state "
        f"FROM {_table(table)} WHERE subject = any($1::text[]) ORDER BY subject{suffix}", list(subjects))
    return {r["subject"]: CaseRow(r["subject"], r["partition"], int(r["last_seq"]), r["open"], r["stage"],
                                  r["service_area"], json.loads(r["state"])) for r in rows}


async def save_cases(conn: asyncpg.Connection, table: str, rows: Iterable[CaseRow]) -> None:
    """Insert or update cases; a row never goes back to an older last_seq."""
    await conn.executemany(
        f"INSERT INTO {_table(table)} AS c (subject, partition, last_seq, open, stage, service_area, state) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) ON CONFLICT (subject) DO UPDATE SET "
        "partition = EXCLUDED.partition, "
        "last_seq = EXCLUDED.last_seq, open = EXCLUDED.open, stage = EXCLUDED.stage, "
        "service_area = EXCLUDED.service_area, state = EXCLUDED.state WHERE c.last_seq <= EXCLUDED.last_seq",
        [(r.subject, r.partition, r.last_seq, r.open, r.stage, r.service_area, json.dumps(r.state)) for r in rows])


async def save_deadlines(conn: asyncpg.Connection, owner: str,
                         rows: Iterable[tuple[str, int, Deadline]]) -> None:
    """Write the timer index rows of (subject, partition, deadline)."""
    await conn.executemany(
        "INSERT INTO deadlines AS d (owner, subject, key, partition, stage, kind, due, status, breached, late, "
        "next_fire_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (owner, subject, key) "
        "DO UPDATE SET partition = EXCLUDED.partition, due = EXCLUDED.due, status = EXCLUDED.status, "
        "breached = EXCLUDED.breached, late = EXCLUDED.late, next_fire_at = EXCLUDED.next_fire_at "
        "WHERE (d.due, d.status, d.breached, d.late, d.next_fire_at, d.partition) IS DISTINCT FROM "
        "(EXCLUDED.due, EXCLUDED.status, EXCLUDED.breached, EXCLUDED.late, EXCLUDED.next_fire_at, EXCLUDED.partition)",
        [(owner, s, d.key, p, d.stage, d.kind, d.due, d.status, d.breached, d.late, d.next_fire_at())
         for s, p, d in rows])


async def due_subjects(conn: asyncpg.Connection, owner: str, partitions: Sequence[int], now: datetime,
                       limit: int) -> list[str]:
    """Subjects with a deadline needing the tick at or before `now`, earliest first (index range, no scan)."""
    rows = await conn.fetch(
        "SELECT subject FROM deadlines WHERE owner = $1 AND next_fire_at <= $2 AND partition = any($3::int[]) "
        "ORDER BY next_fire_at LIMIT $4", owner, now, list(partitions), limit)
    return list(dict.fromkeys(r["subject"] for r in rows))


async def hold_history(conn: asyncpg.Connection) -> None:
    """Take the history's append lock for the rest of the transaction (the lock every append takes first)."""
    await conn.execute("SELECT 1 FROM chain_head FOR UPDATE")


async def pending_subjects(conn: asyncpg.Connection, last_seqs: dict[str, int], types: Sequence[str],
                           own_source: str, quiet_since: datetime | None = None) -> set[str]:
    """Subjects whose history holds an event of `types` (not derived by us) not yet applied to the case,
    or (given `quiet_since`) recorded after `quiet_since`."""
    if not last_seqs:
        return set()
    rows = await conn.fetch(
        "SELECT DISTINCT e.subject FROM events e JOIN unnest($1::text[], $2::bigint[]) AS c(subject, last_seq) "
        "ON e.subject = c.subject WHERE (e.seq > c.last_seq OR e.recorded_at > $5) AND e.type = any($3::text[]) "
        "AND e.source <> $4",
        list(last_seqs), list(last_seqs.values()), list(types), own_source, quiet_since)
    return {r["subject"] for r in rows}


async def store_procedure(conn: asyncpg.Connection, procedure: Procedure) -> None:
    """Keep the document a case is received under (once per key)."""
    await conn.execute(
        "INSERT INTO procedure_documents (key, id, version, document) VALUES ($1, $2, $3, $4::jsonb) "
        "ON CONFLICT (key) DO NOTHING", procedure.key, procedure.id, procedure.version,
        json.dumps(procedure.document()))


async def load_procedures(conn: asyncpg.Connection, book: ProcedureBook) -> int:
    """Teach `book` every stored document (versions open cases may still use); return how many."""
    rows = await conn.fetch("SELECT key, document::text AS document FROM procedure_documents")
    for r in rows:
        procedure = book.add_document(json.loads(r["document"]))
        if procedure.key != r["key"]:
            book.alias(r["key"], procedure)
    return len(rows)
