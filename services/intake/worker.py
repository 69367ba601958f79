"""Intake's consume, decide, emit loop: one database transaction per batch, dead letters before offsets.

Per batch: judge every record (pure; the consumer loop does it while the previous batch commits),
then in one transaction take the history's append lock, look up the batch's ids and predecessor
keys, plan (pure), release held events, hold new ones and append to the history; commit; then send
the dead letters and wait for the broker's acks. The consumer loop commits offsets only after this
returns, so a crash anywhere re-reads the batch and re-derives the same outcome (duplicates then).
The relay publishes the history to `casefeedback.events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import asyncpg
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter as PrometheusCounter

from schemas.registry import INBOUND_TOPICS
from schemas.times import event_time
from services.cases import rules
from services.cases.story import JUDGED_TYPES, Case, Refusal, act_of
from services.common import eventstore
from services.common.consumer import Apply
from services.common.deadletter import Headers, deadletter_value, send_deadletters
from services.common.metrics import EVENT_DELAY, EVENTS
from services.common.worker import Background, Worker
from services.deadlines import store as deadline_store
from services.deadlines.procedure_files import load_book
from services.deadlines.procedures import ProcedureBook
from services.intake import domain, store, story
from services.intake.domain import Accepted, Append, Refused, Verdict
from services.intake.store import HeldEvent

log = logging.getLogger(__name__)

# Contract section 1: a record whose key is not its subject is accepted, and counted here.
KEY_MISMATCHES = PrometheusCounter("casefeedback_key_mismatch",
                                   "Valid inbound records whose Kafka key is not their CloudEvents subject")


def utc_now() -> datetime:
    """The processing clock (the only place intake reads it)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Origin:
    """Where an event came from: its inbound record's coordinates, bytes and broker timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    record_time: datetime
    headers: Headers | None = None  # None where only the hold's copy is left (it keeps no headers)

    @classmethod
    def of_record(cls, r: ConsumerRecord) -> Origin:
        return cls(r.topic, r.partition, r.offset, r.key, r.value, record_time(r.timestamp), tuple(r.headers or ()))

    @classmethod
    def of_held(cls, h: HeldEvent) -> Origin:
        return cls(h.topic, h.partition, h.offset, h.key, h.raw, h.record_time)

    def letter(self, reason: str, detail: str) -> dict[str, Any]:
        """The dead letter for this record."""
        return deadletter_value(reason, detail, self.topic, self.partition, self.offset, self.key, self.value,
                                headers=self.headers)


# The producer sets a record's timestamp: one past what datetime holds must not stop intake.
LATEST_RECORD_MS = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp() * 1000)


def record_time(timestamp_ms: int) -> datetime:
    """A record's broker timestamp as a datetime, clamped to what datetime and PostgreSQL hold."""
    return datetime.fromtimestamp(min(max(0, timestamp_ms), LATEST_RECORD_MS) / 1000, UTC)


@dataclass
class Outcome:
    """What a batch did, for dead letters and metrics once the history has committed."""

    accepted: list[tuple[str, float]] = field(default_factory=list)  # (type, inbound record's POSIX time)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    letters: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, origin: Origin, event_type: str, reason: str, detail: str, event_id: str | None = None) -> None:
        """Dead-letter one record, count it rejected and log one line about it (never its body)."""
        self.rejected.append(event_type)
        self.letters.append(origin.letter(reason, detail))
        log.info("refused %s record at %s[%d]@%d (event id %s): %s", reason, origin.topic, origin.partition,
                 origin.offset, "unreadable" if event_id is None else repr(event_id), detail[:300])


class IntakeWorker(Worker):
    """Consumes the inbound topics; accepts each valid event once, holds early ones, dead-letters the rest."""

    name = "intake"
    topics = INBOUND_TOPICS
    clock: Callable[[], datetime] = staticmethod(utc_now)
    stories_since: int = 2**62  # until `setup` reads it: any case may predate the stories (always safe)

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply one batch durably (history commit, dead letters acked); offsets are committed after."""
        await (await self.prepare(records))()

    async def prepare(self, records: Sequence[ConsumerRecord]) -> Apply:
        """Judge the batch (pure CPU work, done while the previous batch commits); return its apply step."""
        return functools.partial(self._apply, records, await self._judge(records))

    async def _apply(self, records: Sequence[ConsumerRecord], verdicts: list[Verdict]) -> None:
        now = self.clock()
        try:
            outcome = await self._record(records, verdicts, now)
        except asyncpg.DataError as exc:  # the database refused a value: find it, never stop on it
            if len(records) > 1:
                for record in records:
                    await self.handle([record])
                return
            outcome = Outcome()
            outcome.refuse(Origin.of_record(records[0]), _label(verdicts[0]), "invalid_data",
                           f"the history refused a value: {type(exc).__name__}")
        await self._finish(outcome, now)

    async def _judge(self, records: Sequence[ConsumerRecord]) -> list[Verdict]:
        verdicts = []
        for i, record in enumerate(records):
            if i % 25 == 24:
                await asyncio.sleep(0)  # judging is CPU work: let the batch being applied progress in between
            verdicts.append(domain.judge(record.value, self.settings.max_record_bytes, record.topic, record.headers,
                                         key=record.key))
        return verdicts

    async def _record(self, records: Sequence[ConsumerRecord], verdicts: list[Verdict], now: datetime) -> Outcome:
        outcome = Outcome()
        for record, verdict in zip(records, verdicts, strict=True):
            if isinstance(verdict, Refused):
                outcome.refuse(Origin.of_record(record), verdict.type, verdict.reason, verdict.detail, verdict.id)
            elif record.key != verdict.subject.encode():
                KEY_MISMATCHES.inc()
        async with self.pool.acquire() as conn, conn.transaction():
            await store.lock_history(conn)
            known = await self._known(conn, verdicts)
            plan = domain.plan_batch(verdicts, known)
            released = await store.release(conn, [a.key for a in plan.appends if isinstance(a, domain.Release)])
            released = _fitting(outcome, released, plan.openers)
            await store.hold(conn, self._to_hold(records, verdicts, plan.holds), now,
                             now + timedelta(seconds=self.settings.out_of_order_grace_s))
            events, sources = _expand(plan.appends, records, verdicts, released)
            events = await self._admit(conn, events, sources, outcome, now)
            result = await eventstore.append(conn, events, now, recorded=known.recorded)
        _settle(outcome, plan, records, verdicts, result, sources)
        return outcome

    @staticmethod
    async def _known(conn: asyncpg.Connection, verdicts: list[Verdict]) -> domain.Known:
        valid = [v for v in verdicts if isinstance(v, Accepted)]
        keys = {k for v in valid for k in (v.awaits, v.provides) if k is not None}
        return await store.known(conn, [v.id for v in valid], keys)

    @staticmethod
    def _to_hold(records: Sequence[ConsumerRecord], verdicts: list[Verdict], holds: dict[int, str]) -> list[HeldEvent]:
        out = []
        for index in sorted(holds):
            item, o = verdicts[index], Origin.of_record(records[index])
            assert isinstance(item, Accepted)
            out.append(HeldEvent(item.id, holds[index], item.digest, item.body, o.value or b"", o.topic,
                                 o.partition, o.offset, o.key, o.record_time))
        return out

    @functools.cached_property
    def book(self) -> ProcedureBook:
        """The procedures acts are judged by: the current files (`setup` adds every stored version)."""
        return load_book(self.settings.procedures_dir, self.settings.default_procedure)

    async def setup(self) -> None:
        """Store the current procedures and learn every stored version a recorded case may keep."""
        async with self.pool.acquire() as conn:
            for procedure_id in self.book.ids():  # every key a story names is stored for the readers
                current = self.book.current(procedure_id)
                assert current is not None
                await deadline_store.store_procedure(conn, current)
            await deadline_store.load_procedures(conn, self.book)
            self.stories_since = await store.stories_since(conn)

    async def _admit(self, conn: asyncpg.Connection, events: list[eventstore.NewEvent], sources: dict[str, Source],
                     outcome: Outcome, now: datetime, final: bool = False) -> list[eventstore.NewEvent]:
        """The events the case's story admits (contract 11.1), in order, with the acts that waited for it.

        Each act is judged against its case's story as intake keeps it, and the stories it changes are
        written in the same transaction as the append. An act refused now waits in the hold for the
        grace time (an act it needs, dated before it, may still come: upstream systems send out of order)
        and is judged again each time its case's story moves; once the grace has passed (`final`) a
        refusal is a dead letter with the judgement's reason and detail.
        """
        cases = await self._cases(conn, [e.body for e in events])
        kept: list[eventstore.NewEvent] = []
        waiting: list[eventstore.NewEvent] = []
        for event in events:
            (kept if self._judged(cases, event.body, event.time) else waiting).append(event)
        kept += self._retried(cases, waiting)  # a later act of the same batch may be the one it needed
        kept += await self._released(conn, cases, sources)
        if final:
            for event in waiting:
                self._refuse(cases, event.body, sources, outcome)
        else:
            await store.hold(conn, [_story_held(e, sources[str(e.body["id"])]) for e in waiting], now,
                             now + timedelta(seconds=self.settings.out_of_order_grace_s))
        await store.save_stories(conn, {s: c.case.acts for s, c in cases.items() if c.moved})
        return kept

    async def _cases(self, conn: asyncpg.Connection, bodies: list[dict[str, Any]]) -> dict[str, _Judging]:
        subjects = {str(b["subject"]) for b in bodies if b.get("type") in JUDGED_TYPES}
        stored = await store.load_stories(conn, subjects, self.stories_since)
        return {s: _Judging(rules.tell(stored.get(s, []), self.book).case) for s in subjects}

    def _judged(self, cases: dict[str, _Judging], body: dict[str, Any], time: datetime | None) -> bool:
        """Whether the act's story admits it now (moving the story on); True for what the story does not judge."""
        act = act_of(body, time or event_time(body))
        if act is None:
            return True
        judging = cases.setdefault(act_subject(body), _Judging(Case()))
        told = rules.judge(judging.case, act, self.book)
        if isinstance(told, Refusal):
            judging.refusals[act.id] = told
            return False
        judging.case, judging.moved = told, True
        return True

    def _retried(self, cases: dict[str, _Judging], waiting: list[eventstore.NewEvent]) -> list[eventstore.NewEvent]:
        """The batch's refused acts that the batch's later acts made admissible (taken out of `waiting`)."""
        admitted: list[eventstore.NewEvent] = []
        progress = True
        while progress and waiting:
            progress = False
            for event in list(waiting):
                if self._judged(cases, event.body, event.time):
                    admitted.append(event)
                    waiting.remove(event)
                    progress = True
        return admitted

    async def _released(self, conn: asyncpg.Connection, cases: dict[str, _Judging],
                        sources: dict[str, Source]) -> list[eventstore.NewEvent]:
        """The held acts of the cases whose story moved that it now admits (judged again until none moves)."""
        held = await store.held_for_stories(conn, [s for s, c in cases.items() if c.moved])
        admitted: list[eventstore.NewEvent] = []
        progress = True
        while progress and held:
            progress = False
            for h in list(held):
                if self._judged(cases, h.body, None):
                    admitted.append(eventstore.NewEvent(h.body, h.raw))
                    sources[h.id] = h
                    held.remove(h)
                    progress = True
        await store.unhold(conn, [str(e.body["id"]) for e in admitted])
        return admitted

    @staticmethod
    def _refuse(cases: dict[str, _Judging], body: dict[str, Any], sources: Mapping[str, Source],
                outcome: Outcome) -> None:
        event_id = str(body["id"])
        told = cases[act_subject(body)].refusals[event_id]
        outcome.refuse(_origin(sources[event_id]), domain.type_label(body.get("type")), told.reason, told.detail,
                       event_id)

    async def _finish(self, outcome: Outcome, now: datetime) -> None:
        await send_deadletters(self.producer, outcome.letters)
        _count(outcome, now)

    def background(self) -> list[Background]:
        """The expiry of held events past their grace."""
        return [self._expire_forever]

    async def _expire_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.expire_once(self.clock())
            except (asyncpg.PostgresError, OSError, KafkaError) as exc:  # retried on the next tick
                log.warning("expiring held events failed (%s); retrying", type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.05, self.settings.tick_interval_s))

    async def expire_once(self, now: datetime) -> int:
        """Dead-letter held events whose grace passed at `now` (appending any whose predecessor came)."""
        async with self.pool.acquire() as conn:
            if not await store.any_expired(conn, now):
                return 0
            async with conn.transaction():
                await store.lock_history(conn)
                expired = await store.take_expired(conn, now)
                judged = [h for h in expired if h.awaits.startswith(store.STORY_KEY)]  # their grace is over
                held = [h for h in expired if not h.awaits.startswith(store.STORY_KEY)]
                openers = await store.openers(conn, {h.awaits for h in held})
                outcome = Outcome()
                fitting = _fitting(outcome, {key: [h for h in held if h.awaits == key] for key in openers}, openers)
                waited = [h for hs in fitting.values() for h in hs] + judged
                sources: dict[str, Source] = {h.id: h for h in expired}
                events = await self._admit(conn, [eventstore.NewEvent(h.body, h.raw) for h in waited], sources,
                                           outcome, now, final=True)
                result = await eventstore.append(conn, events, now)
                _expiry_outcome(outcome, held, frozenset(openers), result, sources, self.settings.out_of_order_grace_s)
                await send_deadletters(self.producer, outcome.letters)  # acked before the hold's delete commits
        _count(outcome, now)
        return len(held)


def _fitting(outcome: Outcome, released: dict[str, list[HeldEvent]],
             openers: dict[str, story.Opener]) -> dict[str, list[HeldEvent]]:
    """The released events that fit their opener's story; the others are refused into `outcome`."""
    kept: dict[str, list[HeldEvent]] = {}
    for key, held in released.items():
        for h in held:
            problem = story.problem(h.body, openers.get(key))
            if problem is None:
                kept.setdefault(key, []).append(h)
            else:
                outcome.refuse(Origin.of_held(h), domain.type_label(h.body.get("type")), problem.reason,
                               problem.detail, h.id)
    return kept


@dataclass
class _Judging:
    """A case being judged in one transaction: its story, whether it moved, and why acts were refused."""

    case: Case
    moved: bool = False
    refusals: dict[str, Refusal] = field(default_factory=dict)


def act_subject(body: Mapping[str, Any]) -> str:
    return str(body["subject"])


def _story_held(event: eventstore.NewEvent, source: Source) -> HeldEvent:
    """The hold's row of an act that waits for its case's story to move."""
    origin = _origin(source)
    digest = event.body_digest or eventstore.digest(event.body)
    return HeldEvent(str(event.body["id"]), store.STORY_KEY + act_subject(event.body), digest, event.body,
                     event.raw or origin.value or b"", origin.topic, origin.partition, origin.offset, origin.key,
                     origin.record_time)


def _label(verdict: Verdict) -> str:
    return verdict.type if isinstance(verdict, Refused) else domain.type_label(verdict.type)


# Where an appended event came from: its inbound record, or the hold (which kept the record's coordinates).
Source: TypeAlias = ConsumerRecord | HeldEvent


def _origin(source: Source) -> Origin:
    return Origin.of_held(source) if isinstance(source, HeldEvent) else Origin.of_record(source)


def _record_time_s(source: Source) -> float:
    if isinstance(source, HeldEvent):
        return source.record_time.timestamp()
    return min(max(0, int(source.timestamp)), LATEST_RECORD_MS) / 1000


def _expand(appends: list[Append | domain.Release], records: Sequence[ConsumerRecord], verdicts: list[Verdict],
            released: dict[str, list[HeldEvent]]) -> tuple[list[eventstore.NewEvent], dict[str, Source]]:
    """The planned appends as history events in order, and where each came from (by id)."""
    events: list[eventstore.NewEvent] = []
    sources: dict[str, Source] = {}
    for step in appends:
        if isinstance(step, Append):
            item, record = verdicts[step.item], records[step.item]
            assert isinstance(item, Accepted)
            events.append(eventstore.NewEvent(item.body, record.value, item.canonical, item.digest, item.time))
            sources[item.id] = record
            continue
        for held in released.get(step.key, []):
            events.append(eventstore.NewEvent(held.body, held.raw))
            sources[held.id] = held
    return events, sources


def _settle(outcome: Outcome, plan: domain.Plan, records: Sequence[ConsumerRecord], verdicts: list[Verdict],
            result: eventstore.AppendResult, sources: dict[str, Source]) -> None:
    """Fill the outcome from the plan and the append's result."""
    for index in plan.duplicates:
        outcome.duplicates.append(_label(verdicts[index]))
    for index in plan.conflicts:
        _conflict(outcome, Origin.of_record(records[index]), verdicts[index])
    for index, problem in plan.refusals.items():
        outcome.refuse(Origin.of_record(records[index]), _label(verdicts[index]), problem.reason, problem.detail,
                       _id(verdicts[index]))
    _settle_append(outcome, result, sources)


def _settle_append(outcome: Outcome, result: eventstore.AppendResult, sources: dict[str, Source]) -> None:
    for stored in result.stored:
        outcome.accepted.append((domain.type_label(stored.type), _record_time_s(sources[stored.id])))
    for dup in result.duplicates:
        outcome.duplicates.append(domain.type_label(dup.body["type"]))
    for conflict in result.conflicts:
        _conflict(outcome, _origin(sources[conflict.id]), Accepted(conflict.body, b""))


def _id(verdict: Verdict) -> str | None:
    return verdict.id if isinstance(verdict, Refused | Accepted) else None


def _conflict(outcome: Outcome, origin: Origin, verdict: Verdict) -> None:
    assert isinstance(verdict, Accepted)
    outcome.refuse(origin, domain.type_label(verdict.type), "invalid_data",
                   f"conflict: id {verdict.id[:200]!r} was already accepted with a different body; the first is kept",
                   verdict.id)


def _expiry_outcome(outcome: Outcome, held: list[HeldEvent], present: frozenset[str],
                    result: eventstore.AppendResult, sources: dict[str, Source], grace_s: float) -> None:
    """Fill `outcome` with what the expiry appended, and dead-letter what waited in vain for its predecessor."""
    _settle_append(outcome, result, sources)
    for h in held:
        if h.awaits not in present:
            need, _ = domain.split_key(h.awaits)
            outcome.refuse(Origin.of_held(h), domain.type_label(h.body.get("type")), "out_of_order",
                           f"{h.body.get('type')} needs a {need} in the history first; none was accepted within "
                           f"the {grace_s:g} s grace", h.id)


def _count(outcome: Outcome, now: datetime) -> None:
    """Count the batch's results and observe record-to-acceptance delays."""
    tally = Counter((t, "accepted") for t, _ in outcome.accepted)
    tally.update((t, "duplicate") for t in outcome.duplicates)
    tally.update((t, "rejected") for t in outcome.rejected)
    for (event_type, result), n in tally.items():
        EVENTS.labels(IntakeWorker.name, event_type, result).inc(n)
    now_s = now.timestamp()
    EVENT_DELAY.labels(IntakeWorker.name).observe_many([max(0.0, now_s - t) for _, t in outcome.accepted])
