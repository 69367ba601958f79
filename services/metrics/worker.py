"""Metrics' worker: follows the history, keeps per-day counts by event time, exports rolling figures.

Per partition of `casefeedback.events` the counts live in `metrics_buckets`, written in the same
transaction as the group's position, so a restart rebuilds the same figures without double
counting. The worker mirrors the buckets of the partitions it owns in memory (`LiveFigures`); the
collector sums them at scrape time for `now`, in a scrape thread. An event the domain refuses,
whatever went wrong with it, becomes a dead letter and the batch flows on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from schemas.registry import TOPIC_EVENTS
from services.common.deadletter import deadletter_value, send_deadletters
from services.common.settings import Settings
from services.common.worker import Background, HistoryRecord, HistoryWorker
from services.metrics import domain as d
from services.metrics import store
from services.metrics.collector import MetricsCollector
from services.metrics.figures import LiveFigures
from services.metrics.projection import PROJECTION, label_sets

log = logging.getLogger(__name__)
SURVEY_REFRESH_S = 1.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MetricsWorker(HistoryWorker):
    """Keeps rolling satisfaction, compliment, outcome and volume figures for Prometheus."""

    name = "metrics"
    live: ClassVar[list[MetricsWorker]] = []  # workers running in this process (tests read them)
    # Off by default: `casefeedback replay` compares live per-day counts with a rebuild day by day, so
    # it must apply `domain.compact` to both sides before compaction may run on a schedule.
    compact_every_s: ClassVar[float | None] = None

    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer):
        super().__init__(settings, pool, producer)
        self.sets = label_sets(settings)
        self.figures = LiveFigures(self.sets)
        self.clock: Callable[[], datetime] = _utc_now
        self.collector = MetricsCollector(self.figures, lambda: self.clock())
        self._pending: tuple[dict[int, d.Buckets], list[d.Survey]] | None = None

    def owned_partitions(self) -> set[int]:
        """Partitions of casefeedback.events this worker owns now."""
        return set(self.figures.partitions)

    async def setup(self) -> None:
        await self._refresh_surveys()
        REGISTRY.register(self.collector)
        MetricsWorker.live.append(self)

    def background(self) -> list[Background]:
        tasks: list[Background] = [self._follow_surveys]
        return tasks + [self._compact_on_schedule] if self.compact_every_s else tasks

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        await super().on_assigned(partitions)
        mine = [tp.partition for tp in partitions if tp.topic == TOPIC_EVENTS]
        async with self.pool.acquire() as conn:
            self.figures.load(await store.load(conn, self.group, mine))

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.figures.drop(tp.partition for tp in partitions if tp.topic == TOPIC_EVENTS)

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        self._pending = None
        await super().handle(records)
        if self._pending is not None:
            self.figures.adopt(*self._pending)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[HistoryRecord]) -> None:
        """Count the events into per-partition deltas and store them with the position."""
        deltas: dict[int, d.Buckets] = {}
        defined: list[d.Survey] = []
        letters: list[dict[str, Any]] = []
        for event in events:
            try:
                counted = PROJECTION.count(event.body, event.partition, event.seq, self.sets)
            except Exception as exc:  # noqa: BLE001 - the domain step refuses this one event, never the service
                letters.append(_letter(event, exc))
                continue
            if counted.survey is not None:
                await store.save_survey(conn, counted.survey.survey_id, event.partition, event.seq,
                                        event.body["data"])
                defined.append(counted.survey)
            PROJECTION.add(deltas.setdefault(event.partition, {}), counted.facts)
        await store.add(conn, self.group, deltas)
        await send_deadletters(self.producer, letters)
        self._pending = (deltas, defined)

    async def _refresh_surveys(self) -> None:
        async with self.pool.acquire() as conn:
            self.figures.keep_surveys((await store.surveys(conn)).values())

    async def _follow_surveys(self, stop: asyncio.Event) -> None:
        """Pick up definitions other workers stored; leave the registries when stopping."""
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), SURVEY_REFRESH_S)
                except TimeoutError:
                    await self._refresh_surveys()
        finally:
            REGISTRY.unregister(self.collector)
            if self in MetricsWorker.live:
                MetricsWorker.live.remove(self)

    async def compact(self) -> None:
        """Fold days older than the longest window into one archive count per series, owned partitions only."""
        today = d.today_of(self.clock())
        for partition in sorted(self.figures.partitions):
            async with self.pool.acquire() as conn, conn.transaction():
                await store.compact(conn, self.group, partition, d.compact_cutoff(today))
            self.figures.compact(partition, today)

    async def _compact_on_schedule(self, stop: asyncio.Event) -> None:
        """Compact every `compact_every_s` while running, so the tables stay bounded."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.compact_every_s)
            except TimeoutError:
                await self.compact()


def _letter(event: HistoryRecord, exc: Exception) -> dict[str, Any]:
    body: Mapping[str, Any] = event.body if isinstance(event.body, Mapping) else {}
    detail = f"metrics cannot count history seq {event.seq} ({body.get('type')}): {exc}"
    key = body.get("subject")
    return deadletter_value("internal", detail, TOPIC_EVENTS, event.partition, None,
                            key.encode() if isinstance(key, str) else None,
                            json.dumps(event.body, default=repr).encode())
