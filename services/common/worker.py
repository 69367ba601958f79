"""What every service worker is: a consumer group on some topics, a batch handler, and its wiring.

A service subclasses `Worker`, names its topics and group, and implements `handle`. The runtime
(`services.common.runtime`) builds it with its adapters (database pool, producer) injected, so
integration tests can build a worker directly against the embedded broker and database.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from schemas.registry import TOPIC_EVENTS
from services.common import positions
from services.common.consumer import Apply
from services.common.errors import CasefeedbackError
from services.common.metrics import EVENTS
from services.common.relay import seq_of
from services.common.settings import Settings

log = logging.getLogger(__name__)
Background = Callable[[asyncio.Event], Awaitable[None]]


class Worker:
    """Base of the four services' workers."""

    name: ClassVar[str] = "worker"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer):
        self.settings = settings
        self.pool = pool
        self.producer = producer

    @property
    def group(self) -> str:
        """The consumer group every worker of this service joins."""
        return f"casefeedback-{self.name}"

    async def setup(self) -> None:
        """Prepare state before consuming (load snapshots, caches)."""

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply one batch durably; offsets are committed after this returns."""
        raise NotImplementedError

    async def prepare(self, records: Sequence[ConsumerRecord]) -> Apply:
        """The batch's work that needs nothing from earlier batches' effects, and the step that applies it.

        The consumer loop prepares batch N+1 while batch N is applied; a service with pure CPU work
        per record (validation) does it here. By default everything happens in `handle`.
        """
        return functools.partial(self.handle, records)

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        """Partitions this worker now owns (after a rebalance)."""

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Partitions this worker is about to lose."""

    def background(self) -> list[Background]:
        """Tasks to run beside the consumer loop (timers); each returns when the event is set."""
        return []


@dataclass(frozen=True)
class HistoryRecord:
    """A record of `casefeedback.events` not applied before, with its history seq and parsed body."""

    seq: int
    partition: int
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body["type"])


class HistoryRewound(CasefeedbackError):
    """The history no longer holds an event this consumer applied: committed history was lost or rewritten.

    Going on would apply other events under seqs already counted (or skip them), so the worker stops
    with this message instead; it needs an operator (restore the history, or rebuild the projection).
    """


# Why a record of `casefeedback.events` was refused (bounded label values of UNTRUSTED).
NO_SEQ, BAD_SEQ, NOT_IN_HISTORY, NOT_THE_EVENT = "no_seq", "bad_seq", "not_in_history", "not_history_event"
UNTRUSTED = Counter("casefeedback_untrusted_records_total",
                    "Records of casefeedback.events refused because they do not match the history",
                    ["service", "problem"])


class _Link(NamedTuple):
    """What the history holds at one seq: its body's digest (which covers the id), its chain hash, and the
    redacted body's digest where the event was erased (a relay republishing it sends the redacted body)."""

    digest: bytes
    hash: bytes
    redacted: bytes | None


class HistoryWorker(Worker):
    """A worker that follows `casefeedback.events` and applies each history event exactly once.

    Records carry their history seq; per partition the worker stores how far it has applied (and the
    hash of the history's event there), in the same transaction as its projection, and skips anything
    at or below it. Nothing on the topic is trusted: each record must be the history's own event at
    its seq (the same body digest, which covers its id) before it is applied or moves a position,
    and the event at each stored position must still be in the history, unchanged.
    """

    topics = (TOPIC_EVENTS,)

    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer):
        super().__init__(settings, pool, producer)
        self.applied: dict[int, int] = {}
        self.applied_hash: dict[int, bytes | None] = {}
        for problem in (NO_SEQ, BAD_SEQ, NOT_IN_HISTORY, NOT_THE_EVENT):
            UNTRUSTED.labels(self.name, problem)  # exported at 0, so the first refusal shows in increase()

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        async with self.pool.acquire() as conn:
            loaded = await positions.load(conn, self.group, TOPIC_EVENTS, [tp.partition for tp in partitions])
        for partition, (seq, link) in loaded.items():
            self.applied[partition], self.applied_hash[partition] = seq, link

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            fresh, links = await self.checked(conn, records)
            await self.apply(conn, fresh)
            tops = _tops(fresh, links)
            await positions.save(conn, self.group, TOPIC_EVENTS, tops)
        for record in fresh:
            EVENTS.labels(self.name, record.type, "accepted").inc()
        for partition, (seq, link) in tops.items():
            self.applied[partition], self.applied_hash[partition] = seq, link

    async def checked(self, conn: asyncpg.Connection,
                      records: Sequence[ConsumerRecord]) -> tuple[list[HistoryRecord], dict[int, _Link]]:
        """The records not applied before, checked against the history and parsed; and the history's links.

        Redelivered or republished records (seq at or below the partition's position) are dropped;
        a record that is not the history's event at its seq is refused (logged, counted), never
        applied, and moves no position.
        """
        # The positions as they stand now: a rebalance may reload them (on_assigned) while this awaits.
        high, hashes = dict(self.applied), dict(self.applied_hash)
        seqs = [_seq(record) for record in records]
        partitions = {r.partition for r in records}
        wanted = {s for s in seqs if isinstance(s, int)} | {high.get(p, 0) for p in partitions}
        links = await _links(conn, wanted - {0})
        self._check_positions({p: (high.get(p, 0), hashes.get(p)) for p in partitions}, links)
        out: list[HistoryRecord] = []
        refused: dict[str, int] = {}
        for record, seq in zip(records, seqs, strict=True):
            problem = seq if isinstance(seq, str) else _mismatch(record, links.get(seq))
            if problem is not None:
                refused[problem] = refused.get(problem, 0) + 1
                continue
            assert isinstance(seq, int)
            if seq <= high.get(record.partition, 0):
                continue
            high[record.partition] = seq
            out.append(HistoryRecord(seq, record.partition, json.loads(record.value)))
        self._refuse(refused)
        return out, links

    def _check_positions(self, positions: dict[int, tuple[int, bytes | None]], links: dict[int, _Link]) -> None:
        for partition, (seq, link) in positions.items():
            if seq == 0 or link is None:
                continue
            held = links.get(seq)
            if held is None or held.hash != link:
                now = "is no longer in it" if held is None else "is now another event"
                raise HistoryRewound(
                    f"{self.name}: partition {partition} of {TOPIC_EVENTS} was applied up to history seq {seq}, "
                    f"which {now}: committed history was lost or rewritten (a database restored or crashed "
                    "without durability?). Stopping rather than counting other events under seqs already "
                    "applied; restore the history or rebuild this service's tables, then restart.")

    def _refuse(self, refused: dict[str, int]) -> None:
        for problem, count in refused.items():
            UNTRUSTED.labels(self.name, problem).inc(count)
            log.warning("%s: refused %d record(s) of %s that are not the history's events (%s)",
                        self.name, count, TOPIC_EVENTS, problem)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[HistoryRecord]) -> None:
        """Apply new history events to the projection inside the open transaction."""


def _tops(fresh: Sequence[HistoryRecord], links: dict[int, _Link]) -> dict[int, tuple[int, bytes]]:
    """Per partition, the highest seq applied and the history's hash there (the new stored positions)."""
    top: dict[int, int] = {}
    for record in fresh:
        top[record.partition] = max(top.get(record.partition, 0), record.seq)
    return {partition: (seq, links[seq].hash) for partition, seq in top.items()}


def _seq(record: ConsumerRecord) -> int | str:
    """The history seq a record carries, or why it carries none that can be read."""
    try:
        seq = seq_of(record.headers)
    except ValueError:
        return BAD_SEQ
    if seq is None:
        return NO_SEQ
    return seq if seq > 0 else BAD_SEQ


def _mismatch(record: ConsumerRecord, link: _Link | None) -> str | None:
    """Why the record is not the history's event at its seq (None when it is)."""
    if link is None:
        return NOT_IN_HISTORY
    seen = hashlib.sha256(record.value or b"").digest()
    if seen != link.digest and (link.redacted is None or seen != link.redacted):
        return NOT_THE_EVENT
    return None


async def _links(conn: asyncpg.Connection, seqs: set[int]) -> dict[int, _Link]:
    """What the history holds at each of `seqs` (absent seqs are left out)."""
    if not seqs:
        return {}
    rows = await conn.fetch("SELECT e.seq, e.digest, e.hash, x.redacted_digest FROM events e "
                            "LEFT JOIN erased_events x ON x.seq = e.seq WHERE e.seq = any($1::bigint[])", list(seqs))
    return {seq: _Link(bytes(digest), bytes(link), bytes(redacted) if redacted is not None else None)
            for seq, digest, link, redacted in rows}
