"""The shared engine: apply history events to cases and fire due timers, durably and exactly once.

Both escalation and learning plug a `Tracker` (their pure domain plus how to store it) into the
same two operations:

- `apply`: inside the HistoryWorker's transaction, lock the batch's cases, call the domain's
  `decide` per event in seq order (skipping events at or below the case's `last_seq`), append
  the derived events, and save case rows and timer rows. Refusals are returned for dead letters.
- `tick`: select subjects whose timer rows are due (`next_fire_at <= now`, index range, owned
  partitions only), lock their case rows with SKIP LOCKED (the consumer holds a case while it
  applies), take the history's `chain_head` lock (so nothing can be recorded until the firings are),
  skip any case whose history holds an event not yet applied (it will be fired in event time when
  that event is applied, so a late-arriving act is not preceded by a wall-clock breach), fire the
  rest at `now`, append and save in one transaction.

Lock order is always: case rows (in subject order), then the history's `chain_head` (append), then
the cases' timer rows, so the consumer and the tick never deadlock. A caller must not append to
the history earlier in the same transaction (that would take `chain_head` before case rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Generic, TypeVar

import asyncpg

from services.common import eventstore
from services.common.eventstore import NewEvent, StoredEvent
from services.common.worker import HistoryRecord
from services.deadlines import store
from services.deadlines.store import CaseRow
from services.deadlines.timers import INTERNAL, Deadline, decide_safely

S = TypeVar("S")


@dataclass(frozen=True)
class Tracker(Generic[S]):
    """What the engine needs from a service: its domain functions and how its state is stored."""

    owner: str
    table: str
    source: str
    types: tuple[str, ...]
    decide: Callable[[S | None, dict[str, Any]], Any]
    fire_due: Callable[[S, datetime], tuple[S, list[dict[str, Any]]]]
    encode: Callable[[S], dict[str, Any]]
    decode: Callable[[dict[str, Any]], S]
    deadlines: Callable[[S], Sequence[Deadline]]
    columns: Callable[[S], tuple[bool, str, str]]  # open, stage, service_area


def late_decide(decide: Callable[..., Any], lateness: Mapping[str, timedelta]) -> Callable[..., Any]:
    """A domain's `decide` (escalation's, learning's) deciding with the declared lateness per inbound source
    (contract 11.2; the settings' `source_lateness`). Live and replay must both decide through it."""
    return partial(decide, lateness=dict(lateness)) if lateness else decide


def with_lateness(tracker: Tracker[S], lateness: Mapping[str, timedelta]) -> Tracker[S]:
    """The tracker whose `decide` takes the declared lateness per inbound source (`late_decide`)."""
    return replace(tracker, decide=late_decide(tracker.decide, lateness)) if lateness else tracker


def guard_firing(tracker: Tracker[S], failed: Callable[[S, Exception], None]) -> Tracker[S]:
    """The tracker whose `fire_due` never raises: a case whose firing raises is left as it was (nothing
    fired) and reported to `failed`, so one case cannot stop the tick for the others."""
    fire_due = tracker.fire_due

    def fire_or_leave(state: S, until: datetime) -> tuple[S, list[dict[str, Any]]]:
        try:
            return fire_due(state, until)
        except Exception as exc:  # any failure leaves this case for the next tick and the others go on
            failed(state, exc)
            return state, []
    return replace(tracker, fire_due=fire_or_leave)


@dataclass
class Applied:
    """What one apply or tick did."""

    refusals: list[tuple[HistoryRecord, str, str]] = field(default_factory=list)  # event, reason, detail
    stored: list[StoredEvent] = field(default_factory=list)
    cases: int = 0
    duplicates: int = 0  # derived events the history already held (re-derived: a retried transaction)
    states: dict[str, Any] = field(default_factory=dict)  # the changed cases' states after it


@dataclass
class _Case(Generic[S]):
    state: S | None
    partition: int
    last_seq: int
    changed: bool = False


async def apply(tracker: Tracker[S], conn: asyncpg.Connection, events: Sequence[HistoryRecord]) -> Applied:
    """Apply a batch of history records to the tracker's cases (inside the caller's transaction)."""
    mine = [e for e in events if e.type in tracker.types]
    subjects = sorted({str(e.body["subject"]) for e in mine})
    rows = await store.load_cases(conn, tracker.table, subjects) if subjects else {}
    cases: dict[str, _Case[S]] = {s: _Case(tracker.decode(r.state), r.partition, r.last_seq) for s, r in rows.items()}
    derived: list[dict[str, Any]] = []
    out = Applied()
    for event in mine:
        _apply_one(tracker, cases, event, derived, out)
    return await _commit(tracker, conn, cases, derived, out)


def _apply_one(tracker: Tracker[S], cases: dict[str, _Case[S]], event: HistoryRecord,
               derived: list[dict[str, Any]], out: Applied) -> None:
    subject = str(event.body["subject"])
    case = cases.setdefault(subject, _Case(None, event.partition, 0))
    if event.seq <= case.last_seq:
        return
    decision = decide_safely(tracker.decide, case.state, event.body)
    if decision.refusal and decision.reason == INTERNAL:  # a judged refusal (a 1.1 act) is skipped, not a letter
        out.refusals.append((event, decision.reason, decision.refusal))
    if decision.state is None:
        return
    if event.body.get("source") != tracker.source:
        case.last_seq = event.seq
    case.changed = case.changed or decision.state != case.state or event.body.get("source") != tracker.source
    case.state, case.partition = decision.state, event.partition
    derived.extend(decision.derived)


async def _commit(tracker: Tracker[S], conn: asyncpg.Connection, cases: dict[str, _Case[S]],
                  derived: list[dict[str, Any]], out: Applied) -> Applied:
    if derived:
        result = await eventstore.append(conn, [NewEvent(b) for b in derived])
        out.stored, out.duplicates = result.stored, len(result.duplicates)
    changed = {s: c for s, c in cases.items() if c.changed and c.state is not None}
    await _save(tracker, conn, changed)
    out.cases = len(changed)
    out.states = {s: c.state for s, c in changed.items()}
    return out


async def _save(tracker: Tracker[S], conn: asyncpg.Connection, cases: dict[str, _Case[S]]) -> None:
    rows: list[CaseRow] = []
    timers: list[tuple[str, int, Deadline]] = []
    for subject, case in cases.items():
        assert case.state is not None
        is_open, stage, area = tracker.columns(case.state)
        rows.append(CaseRow(subject, case.partition, case.last_seq, is_open, stage, area, tracker.encode(case.state)))
        timers.extend((subject, case.partition, d) for d in tracker.deadlines(case.state))
    if rows:
        await store.save_cases(conn, tracker.table, rows)
        await store.save_deadlines(conn, tracker.owner, timers)


async def tick(tracker: Tracker[S], conn: asyncpg.Connection, partitions: Sequence[int], now: datetime,
               limit: int = 500, grace: timedelta = timedelta(0)) -> Applied:
    """Fire every due timer of the owned partitions' caught-up, quiet cases at `now`, in one transaction.

    A case is quiet when nothing was recorded for it within `grace` before `now`: upstream systems
    deliver a case's acts late and apart (a backdated response a few seconds behind the complaint),
    and a breach is a statement that the law was broken, so it waits that long for the act that
    would contradict it.
    """
    out = Applied()
    if not partitions:
        return out
    async with conn.transaction():
        subjects = await store.due_subjects(conn, tracker.owner, partitions, now, limit)
        rows = await store.load_cases(conn, tracker.table, subjects, skip_locked=True) if subjects else {}
        if rows:
            # Hold the history's chain lock before looking for unapplied events, and until the firings are
            # appended: an act committed by intake between the look and the append would otherwise land in
            # the history before a breach that ignored it.
            await store.hold_history(conn)
        pending = await store.pending_subjects(conn, {s: r.last_seq for s, r in rows.items()}, tracker.types,
                                               tracker.source, now - grace)
        cases: dict[str, _Case[S]] = {}
        derived: list[dict[str, Any]] = []
        for subject, row in rows.items():
            if subject in pending:
                continue
            state, fired = tracker.fire_due(tracker.decode(row.state), now)
            cases[subject] = _Case(state, row.partition, row.last_seq, changed=True)
            derived.extend(fired)
        return await _commit(tracker, conn, cases, derived, out)
