"""Replay on several processes: one reader, shards that rebuild and compare their own share of the subjects.

The main process reads the history once, in seq order, and checks the whole hash chain as it goes
(exactly as the one-process replay does), then hands each row's event to the shard that owns its
subject. Every projection's state is per subject (escalation, learning, versions) or a sum (metrics
counts), so a shard that sees all of its subjects' events in seq order rebuilds them with the same
code as the one-process replay. The history is read from the database once, not once per shard.

The reader and every shard read one snapshot of the database: the reader opens a read-only
REPEATABLE READ transaction and exports its snapshot (`pg_export_snapshot()`), each shard's
transaction takes it (`SET TRANSACTION SNAPSHOT`) before reading anything, so positions, history and
live tables are of one instant in every process (contract 11.3). Each shard reads its services'
positions in it and rebuilds only what they have applied, and judges its own cases' acts.

A shard compares its per-subject projections with the live state of the subjects it rebuilt, so no
large state crosses between processes: what comes back is the live keys it did not rebuild (a key
no shard rebuilt is in the live state but not derivable from the history) and the summed
projections' states (metrics), added up and compared here. Queues between the reader and the
shards are bounded, so memory stays bounded by a few batches per shard.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import queue
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from multiprocessing.context import SpawnProcess
from typing import Any

import asyncpg

from services.audit import store
from services.audit.differences import Projection, compare
from services.audit.projections import build_judgement, build_projections
from services.audit.replay import (
    Head,
    Progress,
    ReplaySummary,
    apply_rows,
    check_links,
    compare_live,
    finish_chain,
    follow_live,
    lap,
    last_seq,
    note_following,
    read_batches,
    start_chain,
)
from services.common.errors import InfrastructureError
from services.common.settings import Settings

# Below this many events one process is about as quick: starting the shard processes costs about a second.
AUTO_MIN_EVENTS = 200_000
AUTO_MAX_WORKERS = 4
MAX_WORKERS = 64
QUEUED_BATCHES = 4  # per shard: how far the reader may run ahead
POLL_S = 1.0  # how often a blocked reader checks that its shards are still alive


def auto_workers(events: int, cpus: int | None = None) -> int:
    """How many shard processes `casefeedback replay` uses unless told: for a history of `AUTO_MIN_EVENTS`
    or more on two CPUs or more, one per CPU but the reader's, at least two and at most four; else one
    process. (On two CPUs, two shards replayed 1,000,000 events about 1.4 times as fast as one process.)"""
    cpus = cpus if cpus is not None else len(os.sched_getaffinity(0))
    if events < AUTO_MIN_EVENTS or cpus < 2:
        return 1
    return min(max(cpus - 1, 2), AUTO_MAX_WORKERS)


@dataclass
class ShardResult:
    """What one shard found: events, their types, differences, the live keys it did not rebuild (by
    projection) and the summed projections' states, to add up in the main process."""

    summary: ReplaySummary
    unclaimed: dict[str, set[str]] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)


def _summed(projection: Projection) -> bool:
    """A projection whose state is a sum over subjects (added up across shards), not keyed by subject."""
    return not getattr(projection, "per_subject", True)


async def _shard(settings: Settings, inbox: Any, compare_with_live: bool, snapshot: str) -> ShardResult:
    conn = await asyncpg.connect(settings.require_database())
    try:
        async with store.snapshot(conn, snapshot):  # the reader's view of the database, shared
            return await _rebuild(conn, settings, inbox, compare_with_live)
    finally:
        await conn.close()


async def _rebuild(conn: asyncpg.Connection, settings: Settings, inbox: Any, compare_with_live: bool) -> ShardResult:
    projections, judgement = build_projections(settings), build_judgement(settings)
    summary = ReplaySummary(projections=[p.name for p in projections])
    runners = [*projections, judgement]
    for runner in runners:
        await runner.prepare(conn)
    if compare_with_live:
        await follow_live(conn, projections, summary)
    while (dealt := inbox.get()) is not None:  # this shard's rows of one batch (as `StoredEvent` positions)
        apply_rows(pickle.loads(dealt), runners, None, summary)
    for runner in runners:
        summary.differences.extend(runner.finish())
    result = ShardResult(summary)
    if compare_with_live:
        await compare_live(conn, [p for p in projections if not _summed(p)], summary, result.unclaimed)
        result.states = {p.name: dict(p.state()) for p in projections if _summed(p)}
    note_following(projections, judgement, summary)
    return result


def shard_main(settings: Settings, inbox: Any, outbox: Any, compare_with_live: bool, snapshot: str) -> None:
    """Process entry: rebuild (and compare) the subjects whose events arrive on `inbox`, reading the database in
    the exported `snapshot`; the result goes to `outbox`."""
    outbox.put(asyncio.run(_shard(settings, inbox, compare_with_live, snapshot)))


def _put(inbox: Any, item: Any, processes: list[SpawnProcess]) -> None:
    """Hand a batch to a shard, waiting while its queue is full; a shard that failed is an error, not a hang."""
    while True:
        try:
            inbox.put(item, timeout=POLL_S)
            return
        except queue.Full:
            _none_failed(processes)


def _get(outbox: Any, processes: list[SpawnProcess]) -> ShardResult:
    while True:
        try:
            result: ShardResult = outbox.get(timeout=POLL_S)
            return result
        except queue.Empty:
            _none_failed(processes)


def _none_failed(processes: list[SpawnProcess]) -> None:
    for process in processes:
        if process.exitcode not in (None, 0):
            raise InfrastructureError(f"replay shard {process.name} failed (exit code {process.exitcode}); "
                                      "its error is printed above")


def _merge(results: list[ShardResult], summary: ReplaySummary) -> None:
    found = list(summary.differences)  # the chain's, from the reader
    for name in results[0].unclaimed:
        nobodys = set.intersection(*(r.unclaimed.get(name, set()) for r in results))
        found += compare(name, {}, dict.fromkeys(nobodys))
    for result in results:
        summary.events += result.summary.events
        summary.by_type.update(result.summary.by_type)
        summary.refused += result.summary.refused
        for name, n in result.summary.unapplied.items():
            summary.unapplied[name] = summary.unapplied.get(name, 0) + n
        for name, seconds in result.summary.timings.items():
            summary.timings[name] += seconds
        found.extend(result.summary.differences)
        summary.compared.extend(n for n in result.summary.compared if n not in summary.compared)
    summary.refused.sort()
    # In the one-process order: by seq, then what has none by projection and key. Each shard reports what
    # concerns them all (an unreadable live table) once: keep one of each.
    rank = {name: i for i, name in enumerate(summary.projections)}
    summary.differences = sorted(dict.fromkeys(found), key=lambda d: (
        d.seq is None, d.seq or 0, rank.get(d.projection, len(rank)) if d.seq is None else 0,
        d.subject if d.seq is None else ""))


async def _read(conn: asyncpg.Connection, total: int, batch: int, inboxes: list[Any],
                processes: list[SpawnProcess], summary: ReplaySummary, progress: Progress | None,
                expect_head: Head | None) -> None:
    """Read the history once, check the chain (and look for `expect_head`), deal each row's event to its
    subject's shard."""
    shards, chain = len(inboxes), await start_chain(conn, expect_head, summary, total)
    async with aclosing(read_batches(conn, total, batch, summary)) as batches:
        async for rows in batches:
            clock = time.perf_counter()
            summary.differences += check_links(rows, chain)
            clock = lap(summary, "chain", clock)
            dealt: list[list[tuple[Any, ...]]] = [[] for _ in range(shards)]
            for row in rows:  # Python's str hash: the same in this process for every row of a subject
                dealt[hash(row[2]) % shards].append(tuple(row[:8]))
            for inbox, share in zip(inboxes, dealt, strict=True):  # pickled here: the queue's thread only copies
                _put(inbox, pickle.dumps(share, pickle.HIGHEST_PROTOCOL), processes)
            lap(summary, "dealing", clock)
            if progress is not None:
                progress(rows[-1][0], total)
    finish_chain(chain, summary)


async def replay_parallel(conn: asyncpg.Connection, settings: Settings, until: datetime | None = None,
                          batch: int = 5000, workers: int = 2, progress: Progress | None = None,
                          expect_head: Head | None = None) -> ReplaySummary:
    """The replay of `replay.replay`, its projections split over `workers` shard processes by subject, every
    process reading the reader's snapshot."""
    started = time.monotonic()
    async with store.snapshot(conn):
        summary = await _replay_in(conn, await store.export_snapshot(conn), settings, until, batch, workers, progress,
                                   expect_head)
    summary.seconds = time.monotonic() - started
    return summary


async def _replay_in(conn: asyncpg.Connection, snapshot: str, settings: Settings, until: datetime | None, batch: int,
                     workers: int, progress: Progress | None, expect_head: Head | None) -> ReplaySummary:
    total = await last_seq(conn, until)
    compare_with_live = until is None
    context = get_context("spawn")  # a clean interpreter: no event loop or connection inherited
    inboxes = [context.Queue(QUEUED_BATCHES) for _ in range(workers)]
    outbox = context.Queue()
    processes = [context.Process(target=shard_main, args=(settings, inbox, outbox, compare_with_live, snapshot),
                                 name=f"{i + 1}/{workers}", daemon=True) for i, inbox in enumerate(inboxes)]
    for process in processes:
        process.start()
    projections = build_projections(settings)
    summary = ReplaySummary(projections=[p.name for p in projections])
    results: list[ShardResult] = []
    try:
        await _read(conn, total, batch, inboxes, processes, summary, progress, expect_head)
        for inbox in inboxes:
            _put(inbox, None, processes)  # no more rows: finish, compare, report
        results = [_get(outbox, processes) for _ in processes]  # in the order they finish
    finally:
        for process in processes:  # done once every result is in; otherwise something failed: stop them
            if len(results) < len(processes):
                process.terminate()
            process.join(timeout=5)
    _merge(results, summary)
    if compare_with_live:
        summed = [p for p in projections if _summed(p)]
        for projection in summed:
            for result in results:
                projection.absorb(result.states.get(projection.name, {}))
        await compare_live(conn, summed, summary)
    return summary
