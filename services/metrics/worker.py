"""Metrics' worker: follows the history, keeps per-day counts by event time, exports rolling figures.

Per partition of `casefeedback.events` the counts live in `metrics_buckets`, written in the same
transaction as the group's position, so a restart rebuilds the same figures without double
counting. The worker mirrors the buckets of the partitions it owns in memory; the collector sums
them at scrape time for `now`.
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
from prometheus_client import REGISTRY, CollectorRegistry

from schemas.registry import TOPIC_EVENTS
from services.common.deadletter import deadletter_value, send_deadletters
from services.common.settings import Settings
from services.common.worker import Background, HistoryRecord, HistoryWorker
from services.metrics import domain as d
from services.metrics import store
from services.metrics.collector import MetricsCollector

log = logging.getLogger(__name__)
SURVEY_REFRESH_S = 1.0
Refused = (d.BadEvent, KeyError, TypeError, ValueError)


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
        self.sets = d.LabelSets.with_areas(settings.service_areas)
        self.buckets: dict[int, d.Buckets] = {}
        self.surveys: dict[str, d.Survey] = {}
        self.clock: Callable[[], datetime] = _utc_now
        self.collector = MetricsCollector(self, lambda: self.clock())
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self._pending: tuple[dict[int, d.Buckets], list[d.Survey]] | None = None
        self._merged: d.Buckets | None = None

    def owned_buckets(self) -> d.Buckets:
        """The owned partitions' buckets summed (cached until the next change)."""
        if self._merged is None:
            self._merged = d.merge(self.buckets.values())
        return self._merged

    def owned_partitions(self) -> set[int]:
        """Partitions of casefeedback.events this worker owns now."""
        return set(self.buckets)

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
            self.buckets.update(await store.load(conn, self.group, mine))
        self._merged = None

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self.buckets.pop(tp.partition, None)
        self._merged = None

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        self._pending = None
        await super().handle(records)
        if self._pending is not None:
            self._adopt(*self._pending)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[HistoryRecord]) -> None:
        """Count the events into per-partition deltas and store them with the position."""
        deltas: dict[int, d.Buckets] = {}
        defined: list[d.Survey] = []
        letters: list[dict[str, Any]] = []
        for event in events:
            try:
                if event.type == "survey.defined":
                    defined.append(await self._define(conn, event))
                else:
                    d.add_facts(deltas.setdefault(event.partition, {}), d.facts_of(event.body, self.sets))
            except Refused as exc:
                letters.append(_letter(event, exc))
        await store.add(conn, self.group, deltas)
        await send_deadletters(self.producer, letters)
        self._pending = (deltas, defined)

    async def _define(self, conn: asyncpg.Connection, event: HistoryRecord) -> d.Survey:
        survey = d.survey_of(event.body, event.partition, event.seq)
        await store.save_survey(conn, survey.survey_id, event.partition, event.seq, event.body["data"])
        return survey

    def _adopt(self, deltas: Mapping[int, d.Buckets], defined: list[d.Survey]) -> None:
        for partition, delta in deltas.items():
            if partition in self.buckets:  # revoked meanwhile: its new owner loads it from the database
                d.add_into(self.buckets[partition], delta)
        for survey in defined:
            d.keep_survey(self.surveys, survey)
        self._merged = None

    async def _refresh_surveys(self) -> None:
        async with self.pool.acquire() as conn:
            for survey in (await store.surveys(conn)).values():
                d.keep_survey(self.surveys, survey)

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
        for partition in sorted(self.buckets):
            async with self.pool.acquire() as conn, conn.transaction():
                await store.compact(conn, self.group, partition, d.compact_cutoff(today))
            if partition in self.buckets:
                d.compact(self.buckets[partition], today)
        self._merged = None

    async def _compact_on_schedule(self, stop: asyncio.Event) -> None:
        """Compact every `compact_every_s` while running, so the tables stay bounded."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.compact_every_s)
            except TimeoutError:
                await self.compact()

    def health(self) -> dict[str, Any]:
        return {"surveys_defined": len(self.surveys), "partitions_owned": len(self.buckets)}


def _letter(event: HistoryRecord, exc: Exception) -> dict[str, Any]:
    detail = f"metrics cannot count history seq {event.seq} ({event.body.get('type')}): {exc}"
    key = event.body.get("subject")
    return deadletter_value("invalid_data", detail, TOPIC_EVENTS, event.partition, None,
                            key.encode() if isinstance(key, str) else None, json.dumps(event.body).encode())
