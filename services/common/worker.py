"""What every service worker is: a consumer group on some topics, a batch handler, and its wiring.

A service subclasses `Worker`, names its topics and group, and implements `handle`. The runtime
(`services.common.runtime`) builds it with its adapters (database pool, producer) injected, so
integration tests can build a worker directly against the embedded broker and database.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.registry import TOPIC_EVENTS
from services.common import positions
from services.common.consumer import Apply
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

    def health(self) -> dict[str, Any]:
        """Extra, non-personal facts for the health endpoint."""
        return {}


@dataclass(frozen=True)
class HistoryRecord:
    """A record of `casefeedback.events` not applied before, with its history seq and parsed body."""

    seq: int
    partition: int
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body["type"])


class HistoryWorker(Worker):
    """A worker that follows `casefeedback.events` and applies each history event exactly once.

    Records carry their history seq; per partition the worker stores how far it has applied, in
    the same transaction as its projection, and skips anything at or below it.
    """

    topics = (TOPIC_EVENTS,)

    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer):
        super().__init__(settings, pool, producer)
        self.applied: dict[int, int] = {}

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        async with self.pool.acquire() as conn:
            loaded = await positions.load(conn, self.group, TOPIC_EVENTS, [tp.partition for tp in partitions])
        self.applied.update(loaded)

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        fresh = self.fresh(records)
        async with self.pool.acquire() as conn, conn.transaction():
            await self.apply(conn, fresh)
            await positions.save(conn, self.group, TOPIC_EVENTS, self._positions(fresh))
        for record in fresh:
            self.applied[record.partition] = max(self.applied.get(record.partition, 0), record.seq)
            EVENTS.labels(self.name, record.type, "accepted").inc()

    def fresh(self, records: Sequence[ConsumerRecord]) -> list[HistoryRecord]:
        """The records not applied before, parsed; republished or redelivered ones are dropped."""
        out: list[HistoryRecord] = []
        high = dict(self.applied)
        for record in records:
            seq = seq_of(record.headers)
            if seq is None or seq <= high.get(record.partition, 0):
                continue
            high[record.partition] = seq
            out.append(HistoryRecord(seq, record.partition, json.loads(record.value)))
        return out

    @staticmethod
    def _positions(fresh: Sequence[HistoryRecord]) -> dict[int, int]:
        top: dict[int, int] = {}
        for record in fresh:
            top[record.partition] = max(top.get(record.partition, 0), record.seq)
        return top

    async def apply(self, conn: asyncpg.Connection, events: Sequence[HistoryRecord]) -> None:
        """Apply new history events to the projection inside the open transaction."""
