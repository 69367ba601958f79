"""Replay on several processes: one checks the hash chain over every row, shards rebuild the projections.

Every projection's state is per subject (escalation, learning, versions) or a sum (metrics counts),
so the subjects are split by `hashtext(subject)` into shards that each read only their own events,
still in seq order; the main process absorbs each shard's state and compares it with the live state.
The same code as the one-process replay runs in each shard; only the split is added.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from typing import Any

import asyncpg

from services.audit.projections import Difference, build_projections
from services.audit.replay import QUERY, ChainState, ReplaySummary, apply_history, check_links, compare_live, last_seq
from services.common.settings import Settings


@dataclass
class ShardResult:
    """What one process found: events read, their types, differences, and each projection's state."""

    summary: ReplaySummary
    states: dict[str, Any] = field(default_factory=dict)


async def _chain(url: str, total: int, batch: int) -> ShardResult:
    conn = await asyncpg.connect(url)
    result, chain, after = ShardResult(ReplaySummary()), ChainState(), 0
    try:
        while rows := await conn.fetch(QUERY, after, batch, total):
            result.summary.differences += check_links(rows, chain)
            after = rows[-1]["seq"]
        return result
    finally:
        await conn.close()


async def _shard(settings: Settings, shard: int, shards: int, total: int, batch: int) -> ShardResult:
    conn = await asyncpg.connect(settings.require_database())
    try:
        projections = build_projections(settings)
        summary = ReplaySummary(projections=[p.name for p in projections])
        await apply_history(conn, projections, summary, total, batch, shard=(shards, shard))
        return ShardResult(summary, {p.name: dict(p.state()) for p in projections})
    finally:
        await conn.close()


def chain_task(url: str, total: int, batch: int) -> ShardResult:
    """Process entry: verify the hash chain up to seq `total`."""
    return asyncio.run(_chain(url, total, batch))


def shard_task(settings: Settings, shard: int, shards: int, total: int, batch: int) -> ShardResult:
    """Process entry: rebuild every projection from one shard of the subjects."""
    return asyncio.run(_shard(settings, shard, shards, total, batch))


def _merge(results: list[ShardResult], summary: ReplaySummary) -> None:
    found: list[Difference] = []
    for result in results:
        summary.events += result.summary.events
        summary.by_type.update(result.summary.by_type)
        for name, seconds in result.summary.timings.items():
            summary.timings[name] += seconds
        found.extend(result.summary.differences)
    found.sort(key=lambda d: (d.seq is None, d.seq or 0))
    summary.differences.extend(found)


async def replay_parallel(conn: asyncpg.Connection, settings: Settings, until: datetime | None = None,
                          batch: int = 5000, workers: int = 2) -> ReplaySummary:
    """The replay of `replay.replay`, its projections split over `workers` shard processes plus a chain checker."""
    started = time.monotonic()
    total = await last_seq(conn, until)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=workers + 1, mp_context=get_context("spawn")) as pool:
        tasks = [loop.run_in_executor(pool, chain_task, settings.require_database(), total, batch)]
        tasks += [loop.run_in_executor(pool, shard_task, settings, i, workers, total, batch) for i in range(workers)]
        results = list(await asyncio.gather(*tasks))
    projections = build_projections(settings)
    summary = ReplaySummary(projections=[p.name for p in projections])
    _merge(results, summary)
    for projection in projections:
        for result in results[1:]:
            projection.absorb(result.states.get(projection.name, {}))
    if until is None:
        await compare_live(conn, projections, summary)
    summary.seconds = time.monotonic() - started
    return summary
