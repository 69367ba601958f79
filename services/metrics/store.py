"""The metrics service's tables: per-day buckets per partition and the shared survey definitions."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from services.metrics.domain import BadEvent, Buckets, Survey, merge, survey_of

log = logging.getLogger(__name__)


async def add(conn: asyncpg.Connection, group: str, partition_deltas: Mapping[int, Buckets]) -> None:
    """Add the deltas to the group's stored buckets (inside the transaction that saves its positions)."""
    rows = [(group, p, kind, list(labels), day, n)
            for p, buckets in partition_deltas.items()
            for (kind, labels), days in buckets.items()
            for day, n in days.items()]
    if not rows:
        return
    await conn.executemany(
        "INSERT INTO metrics_buckets(grp, partition, kind, labels, day, n) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (grp, partition, kind, labels, day) DO UPDATE SET n = metrics_buckets.n + EXCLUDED.n",
        rows,
    )


async def load(conn: asyncpg.Connection, group: str, partitions: Iterable[int]) -> dict[int, Buckets]:
    """The group's stored buckets of each of `partitions` (empty where none)."""
    parts = list(partitions)
    out: dict[int, Buckets] = {p: {} for p in parts}
    rows = await conn.fetch(
        "SELECT partition, kind, labels, day, n FROM metrics_buckets WHERE grp = $1 AND partition = any($2::int[])",
        group, parts,
    )
    for r in rows:
        out[r["partition"]].setdefault((r["kind"], tuple(r["labels"])), {})[r["day"]] = int(r["n"])
    return out


async def save_survey(conn: asyncpg.Connection, survey_id: str, partition: int, seq: int,
                      data: Mapping[str, Any]) -> None:
    """Store a definition unless a later one (higher seq) is stored already."""
    await conn.execute(
        "INSERT INTO metrics_surveys(survey_id, partition, seq, definition) VALUES ($1, $2, $3, $4::jsonb) "
        "ON CONFLICT (survey_id) DO UPDATE SET partition = EXCLUDED.partition, seq = EXCLUDED.seq, "
        "definition = EXCLUDED.definition WHERE metrics_surveys.seq < EXCLUDED.seq",
        survey_id, partition, seq, json.dumps(data),
    )


async def surveys(conn: asyncpg.Connection) -> dict[str, Survey]:
    """Every stored survey definition the domain can read (a row it refuses is logged and left out)."""
    out: dict[str, Survey] = {}
    for r in await conn.fetch("SELECT survey_id, partition, seq, definition FROM metrics_surveys"):
        try:
            out[r["survey_id"]] = survey_of({"subject": r["survey_id"], "data": json.loads(r["definition"])},
                                            r["partition"], int(r["seq"]))
        except BadEvent as exc:
            log.warning("metrics_surveys row %s left out: %s", r["survey_id"], exc)
    return out


async def compact(conn: asyncpg.Connection, group: str, partition: int, cutoff: int) -> None:
    """Fold the partition's days before `cutoff` into one archive row per series (day 0), atomically."""
    await conn.execute(
        "WITH old AS (DELETE FROM metrics_buckets WHERE grp = $1 AND partition = $2 AND day > 0 AND day < $3 "
        "RETURNING kind, labels, n) "
        "INSERT INTO metrics_buckets(grp, partition, kind, labels, day, n) "
        "SELECT $1, $2, kind, labels, 0, sum(n) FROM old GROUP BY kind, labels "
        "ON CONFLICT (grp, partition, kind, labels, day) DO UPDATE SET n = metrics_buckets.n + EXCLUDED.n",
        group, partition, cutoff,
    )


async def live_counts(conn: asyncpg.Connection, group: str) -> tuple[Buckets, dict[str, int]] | None:
    """The group's counts summed over partitions and the seq of each stored survey definition (None before
    the tables exist): what replay compares its rebuild with."""
    if not await conn.fetchval("SELECT to_regclass('metrics_buckets') IS NOT NULL"):
        return None
    partitions = [r["partition"] for r in await conn.fetch(
        "SELECT DISTINCT partition FROM metrics_buckets WHERE grp = $1", group)]
    merged = merge((await load(conn, group, partitions)).values())
    return merged, {sid: s.seq for sid, s in (await surveys(conn)).items()}
