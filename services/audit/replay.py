"""Replay: read the whole history once, verify its hash chain, rebuild every projection, compare with live.

Everything is read in one consistent view of the database (`store.snapshot`: one read-only REPEATABLE
READ transaction), so the history, the services' positions and their live tables are those of one
instant however busy the services are (contract 11.3). One pass in seq order, in batches (memory stays
bounded by the batch plus the projections' state): each row's digest and chain link are recomputed as
it is read (the same rule as `eventstore.verify_chain`), then every projection applies the batch's
events in seq order. Before the first event, each projection reads how far its live service has
applied the history (`Projection.follow`) and rebuilds only that, so what a service has not applied
yet (the tail it is working on, a tick that has not fired) is never a difference; the summary says
how many events each left out. `until` limits the replay to the history up to the last event recorded
at or before that instant (a prefix in seq order); the live state is then not compared (it has moved
on), but the chain and every re-derivation still are, over that whole prefix.

Every case's acts are also read through the one judgement (`judgement.Judgement`): the acts it
refuses (a history recorded under contract 1.1) are listed, not differences.

The replay ends with the chain's head (last seq and its hash) for publishing outside the database: a
forger who rewrites a row and recomputes the whole chain leaves a consistent chain, but not the head
published before, which `expect_head` looks for. Derived events the domain expects from what a service
applied but the history lacks (`finish`) mean a service lost work. Time per phase (chain, reading the
events, each projection) is kept per batch, so the summary shows where a slow replay spends it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections import Counter, defaultdict
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter

import asyncpg

from schemas.upcast import UPCAST_TYPES, upcast
from services.audit import store
from services.audit.differences import Difference, Projection, compare
from services.audit.erasure import ERASURE_TYPE, erasure_problems
from services.audit.judgement import Judgement, RefusedAct
from services.common.eventstore import (
    GENESIS,
    LINK_COLUMNS,
    Erased,
    StoredEvent,
    erased_events,
    full_link_from,
    link_problem,
)

Progress = Callable[[int, int], None]
Head = tuple[int, bytes]  # a chain head: the seq of an event and its hash
_TYPE_OF = attrgetter("type")
# Rows are read by position (cheaper than by name, for every event): the first eight columns are a
# `StoredEvent` but for the parsed body; the rest of a link follows, so a row is checked as read.
QUERY = f"SELECT {LINK_COLUMNS} FROM events WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2"
HASH = 12  # the position of `hash` in a row
LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM events WHERE $1::timestamptz IS NULL OR recorded_at <= $1"


@dataclass
class ChainState:
    """Where the hash chain stands while reading: the previous hash and the seq expected next.

    `full_from` is the first seq hashed with the full link; `published` a head to look for, and
    `published_hash` the hash the history holds at its seq, once read.
    """

    prev: bytes = GENESIS
    expected_seq: int = 1
    full_from: int = 1
    published: Head | None = None
    published_hash: bytes | None = None
    erased: dict[int, Erased] = field(default_factory=dict)

    @property
    def head(self) -> Head:
        """The last seq read and its hash (seq 0 and the genesis hash before any)."""
        return self.expected_seq - 1, self.prev


@dataclass
class ReplaySummary:
    """What a replay read and found."""

    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    differences: list[Difference] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    projections: list[str] = field(default_factory=list)
    seconds: float = 0.0
    head: Head | None = None  # the chain's head as read, to publish
    published_found: Head | None = None  # the head the caller expected, found in the history
    erased: list[str] = field(default_factory=list)  # subjects with erased events (erased, not tampered)
    refused: list[RefusedAct] = field(default_factory=list)  # acts the one judgement refuses, in seq order
    # per projection compared with live: the events of its types its service has not applied yet (left out)
    unapplied: dict[str, int] = field(default_factory=dict)
    # seconds spent in the chain check and in each projection
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def ok(self) -> bool:
        return not self.differences


def check_links(rows: list[asyncpg.Record], chain: ChainState) -> list[Difference]:
    """Every broken link among `rows` (read in seq order, following on from `chain`)."""
    found = []
    prev, expected, full_from, erased = chain.prev, chain.expected_seq, chain.full_from, chain.erased
    for row in rows:
        problem = link_problem(row, prev, expected, full_from, erased)
        if problem:
            found.append(Difference("chain", row[2], problem, row[0]))
        prev, expected = row[HASH], row[0] + 1
    chain.prev, chain.expected_seq = bytes(prev), expected
    if chain.published is not None and rows and rows[0][0] <= chain.published[0] <= rows[-1][0]:
        chain.published_hash = next((bytes(r[HASH]) for r in rows if r[0] == chain.published[0]), None)
    return found


async def start_chain(conn: asyncpg.Connection, published: Head | None, summary: ReplaySummary | None = None,
                      total: int | None = None) -> ChainState:
    """The chain's state before its first event, looking for the `published` head if given.

    Erased events (read once here: a few rows) are checked against their erasure records; the subjects
    erased up to seq `total` go into the summary, to be listed as erased.
    """
    chain = ChainState(full_from=await full_link_from(conn), published=published, erased=await erased_events(conn))
    if summary is not None and chain.erased:
        await _note_erasures(conn, chain, summary, total)
    return chain


async def _note_erasures(conn: asyncpg.Connection, chain: ChainState, summary: ReplaySummary,
                         total: int | None) -> None:
    limit = total if total is not None else max(chain.erased)
    chain.erased = {seq: e for seq, e in chain.erased.items() if seq <= limit}
    rows = await conn.fetch("SELECT seq, subject, body::text AS body FROM events WHERE type = $1 AND seq <= $2",
                            ERASURE_TYPE, limit)
    subjects = await conn.fetch("SELECT DISTINCT subject FROM events WHERE seq = any($1::bigint[])", list(chain.erased))
    summary.erased = sorted(r["subject"] for r in subjects)
    summary.differences += erasure_problems(chain.erased, [(r["seq"], r["subject"], json.loads(r["body"]))
                                                           for r in rows], limit)


def finish_chain(chain: ChainState, summary: ReplaySummary) -> None:
    """Put the head read into the summary, and a difference when the published head is not in the history."""
    summary.head = chain.head
    if chain.published is None:
        return
    seq, expected = chain.published
    if chain.published_hash == expected:
        summary.published_found = chain.published
        return
    if chain.published_hash is not None:
        where = f"the event at seq {seq} has hash {chain.published_hash.hex()}"
    else:
        where = f"the history ends at seq {chain.head[0]}" if chain.head[0] < seq else f"no event has seq {seq}"
    summary.differences.append(Difference("chain", "-", f"published head seq {seq} hash {expected.hex()} "
                                                        f"not found: {where}"))


def _events(rows: list[asyncpg.Record]) -> list[StoredEvent]:
    """The rows as events, each payload upcast to its type's current version (only types with upcasters)."""
    loads = json.loads
    events = [StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6], loads(r[7])) for r in rows]
    return [e._replace(body=upcast(e.body)) if e.type in UPCAST_TYPES else e for e in events]


def apply_rows(rows: list[asyncpg.Record], projections: list[Projection], chain: ChainState | None,
               summary: ReplaySummary) -> None:
    """One batch of rows: chain links checked, then each projection fed the whole batch in seq order.

    Projections keep separate state, so feeding them one after the other is the same as event by
    event; differences are put back in seq order (chain first, then projections in their order).
    Time is taken per batch and phase, so timing costs nothing per event.
    """
    with _cycle_collection_paused():
        _apply_batch(rows, projections, chain, summary)


@contextmanager
def _cycle_collection_paused() -> Iterator[None]:
    """Keep Python's cycle collector off the rebuilt state: paused during the batch, then the state frozen.

    Replay keeps every case's state alive as it goes (acyclic: refcounting frees what it drops), so
    collections would walk that growing state again and again for nothing. After each batch what is
    alive is moved out of the collector's reach (`gc.freeze`, as the workers do after start-up); later
    collections scan only what the next batch allocates. Frozen objects are still freed by refcounting.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _apply_batch(rows: list[asyncpg.Record], projections: list[Projection], chain: ChainState | None,
                 summary: ReplaySummary) -> None:
    clock = time.perf_counter()
    found: list[Difference] = []
    if chain is not None:
        found += check_links(rows, chain)
        clock = lap(summary, "chain", clock)
    events = _events(rows)
    summary.events += len(events)
    summary.by_type.update(map(_TYPE_OF, events))
    clock = lap(summary, "read", clock)
    for projection in projections:
        found += _apply_all(projection, events)
        clock = lap(summary, projection.name, clock)
    if found:
        summary.differences += sorted(found, key=lambda d: d.seq or 0)


def _apply_all(projection: Projection, events: list[StoredEvent]) -> list[Difference]:
    found: list[Difference] = []
    apply = projection.apply
    for event in events:
        try:
            differences = apply(event)
        except Exception as exc:  # an edited or malformed event, or a domain bug: report it, keep auditing
            detail = f"cannot apply {event.type} {event.id} (seq {event.seq}): {type(exc).__name__}: {exc}"
            differences = [Difference(projection.name, event.subject, detail[:500], event.seq)]
        if differences:
            found += (d if d.seq is not None else replace(d, seq=event.seq) for d in differences)
    return found


def lap(summary: ReplaySummary, name: str, since: float) -> float:
    """Add the time since `since` to phase `name`; the time now, for the next phase."""
    now = time.perf_counter()
    summary.timings[name] += now - since
    return now


async def replay(conn: asyncpg.Connection, projections: list[Projection], until: datetime | None = None,
                 batch: int = 5000, progress: Progress | None = None, expect_head: Head | None = None,
                 judgement: Judgement | None = None) -> ReplaySummary:
    """Replay the history through `projections` in one snapshot; compare with live state unless `until` is given.

    With `expect_head`, a head published before must be in the history (the same hash at its seq); with
    `judgement`, the acts it refuses are listed.
    """
    started = time.monotonic()
    summary = ReplaySummary(projections=[p.name for p in projections])
    async with store.snapshot(conn):
        total = await last_seq(conn, until)
        if until is None:
            await follow_live(conn, projections, summary)
        runners = [*projections, judgement] if judgement is not None else projections
        await apply_history(conn, runners, summary, total, batch, progress, expect_head)
        if until is None:
            await compare_live(conn, projections, summary)
    note_following(projections, judgement, summary)
    summary.seconds = time.monotonic() - started
    return summary


async def follow_live(conn: asyncpg.Connection, projections: list[Projection], summary: ReplaySummary) -> None:
    """Each projection reads how far its live service has applied the history; what it cannot use is a difference."""
    for projection in projections:
        try:
            summary.differences += await projection.follow(conn)
        except (asyncpg.PostgresError, ValueError) as exc:  # a table the code does not match
            summary.differences.append(Difference(projection.name, "-", f"positions unreadable: {exc}"[:500]))


def note_following(projections: list[Projection], judgement: Judgement | None, summary: ReplaySummary) -> None:
    """Put into the summary what each projection left out as not yet applied, and the refused acts."""
    for projection in projections:
        if getattr(projection, "positions", None) is not None:
            summary.unapplied[projection.name] = int(getattr(projection, "unapplied", 0))
    if judgement is not None:
        summary.refused = sorted(judgement.refused)


async def last_seq(conn: asyncpg.Connection, until: datetime | None) -> int:
    """The seq the replay reads up to: the last event recorded at or before `until` (or the last of all)."""
    return int(await conn.fetchval(LAST_SEQ, until))


async def apply_history(conn: asyncpg.Connection, projections: list[Projection], summary: ReplaySummary,
                        total: int, batch: int, progress: Progress | None = None,
                        expect_head: Head | None = None) -> None:
    """Feed the history up to seq `total` through the projections, checking the hash chain on the way."""
    for projection in projections:
        await projection.prepare(conn)
    chain = await start_chain(conn, expect_head, summary, total)
    try:
        async with aclosing(read_batches(conn, total, batch, summary)) as batches:
            async for rows in batches:
                apply_rows(rows, projections, chain, summary)
                if progress is not None:
                    progress(rows[-1][0], total)
    finally:
        gc.unfreeze()  # what each batch froze (see `_cycle_collection_paused`) is the collector's again
    finish_chain(chain, summary)
    for projection in projections:
        summary.differences.extend(projection.finish())


async def read_batches(conn: asyncpg.Connection, total: int, batch: int,
                       summary: ReplaySummary) -> AsyncGenerator[list[asyncpg.Record], None]:
    """The history up to seq `total` in batches of `QUERY` rows; each next batch is asked for before the
    caller works on the current one, so the database reads it meanwhile. The wait is timed as `database`."""
    def fetch(after: int) -> asyncio.Future[list[asyncpg.Record]]:
        rows: asyncio.Future[list[asyncpg.Record]] = asyncio.ensure_future(conn.fetch(QUERY, after, batch, total))
        return rows

    pending = fetch(0)
    try:
        while True:
            clock = time.perf_counter()
            rows = await pending
            lap(summary, "database", clock)  # waiting for rows, beyond what the caller's work overlapped
            if not rows:
                return
            pending = fetch(rows[-1][0])
            await asyncio.sleep(0)  # let the next query go out
            yield rows
    finally:
        if not pending.done():
            pending.cancel()


async def compare_live(conn: asyncpg.Connection, projections: list[Projection], summary: ReplaySummary,
                       unclaimed: dict[str, set[str]] | None = None) -> None:
    """Compare every projection that has a live counterpart with it; differences go into the summary.

    With `unclaimed` (a parallel replay's shard, which rebuilt only its own subjects) only the keys the
    projection rebuilt are compared, and the live keys it did not rebuild are put in `unclaimed` by
    projection: a key no shard claims is in the live state but not derivable from the history.
    """
    for projection in projections:
        try:
            live = await projection.live_state(conn)
        except (asyncpg.PostgresError, ValueError, KeyError, TypeError) as exc:  # a table the code does not match
            summary.differences.append(Difference(projection.name, "-", f"live state unreadable: {exc}"[:500]))
            continue
        if live is None:
            continue
        summary.compared.append(projection.name)
        rebuilt = projection.state()
        if unclaimed is not None:
            unclaimed[projection.name] = {key for key in live if key not in rebuilt}
            live = {key: value for key, value in live.items() if key in rebuilt}
        summary.differences.extend(compare(projection.name, rebuilt, live))


def render_summary(summary: ReplaySummary, limit: int = 20) -> str:
    """The summary for people: events read, per-type counts, projections, differences (first first)."""
    lines = [f"replayed {summary.events} event(s) in {summary.seconds:.1f} s "
             f"({summary.events / max(summary.seconds, 1e-9):,.0f} events/s)"]
    lines += [f"  {t}: {n}" for t, n in sorted(summary.by_type.items())]
    lines.append(f"projections rebuilt: {', '.join(summary.projections) or '-'}; "
                 f"compared with live: {', '.join(summary.compared) or '-'}")
    if summary.timings:
        spent = sorted(summary.timings.items(), key=lambda kv: -kv[1])
        lines.append("time spent: " + ", ".join(f"{name} {s:.1f} s" for name, s in spent))
    lines += _following_lines(summary)
    lines += _head_lines(summary)
    lines += _refused_lines(summary, limit)
    if summary.erased:
        shown = ", ".join(summary.erased[:limit]) + (" ..." if len(summary.erased) > limit else "")
        lines.append(f"erased (personal and free-text fields removed, chain intact): {len(summary.erased)} "
                     f"case(s): {shown}")
    if summary.ok:
        lines.append("hash chain intact; every derived event re-derived; no differences")
        return "\n".join(lines) + "\n"
    lines.append(f"{len(summary.differences)} difference(s); first differing case: {summary.differences[0].subject}")
    lines += [f"  {d}" for d in summary.differences[:limit]]
    if len(summary.differences) > limit:
        lines.append(f"  ... and {len(summary.differences) - limit} more")
    return "\n".join(lines) + "\n"


def _head_lines(summary: ReplaySummary) -> list[str]:
    """The head to publish (and keep outside the database), and whether an expected head was found."""
    if summary.head is None:
        return []
    seq, head_hash = summary.head
    lines = [f"chain head: seq {seq} hash {head_hash.hex()}"]
    if summary.published_found is not None:
        found_seq, found_hash = summary.published_found
        lines.append(f"published head seq {found_seq} hash {found_hash.hex()} found in the history")
    return lines


def _following_lines(summary: ReplaySummary) -> list[str]:
    """How far behind the history each service compared with live was (its tail is left out, not a difference)."""
    if not summary.unapplied:
        return []
    behind = {name: n for name, n in summary.unapplied.items() if n}
    if not behind:
        return ["compared at the services' positions: every service has applied the whole history"]
    shown = ", ".join(f"{name} {n:,}" for name, n in behind.items())
    return [f"compared at the services' positions; events not yet applied, left out: {shown}"]


def _refused_lines(summary: ReplaySummary, limit: int) -> list[str]:
    """The acts the one judgement refuses (recorded under contract 1.1): listed, skipped by every output."""
    if not summary.refused:
        return []
    lines = [f"refused by the judgement: {len(summary.refused)} act(s) (skipped by every output; not differences)"]
    lines += [f"  {act}" for act in summary.refused[:limit]]
    if len(summary.refused) > limit:
        lines.append(f"  ... and {len(summary.refused) - limit} more")
    return lines
