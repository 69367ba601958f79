"""The worker half of the shared mechanism: owned partitions, the tick loop, dead letters, gauges.

Escalation and learning subclass `TrackingWorker`, give it their `Tracker`, and add metrics.
The tick runs in every worker but only over the partitions of `casefeedback.events` that worker
owns, and row locks plus the deadline flags make a firing happen once even while a rebalance
moves partitions between workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from schemas.registry import TOPIC_EVENTS
from services.common.deadletter import deadletter_value, send_deadletters
from services.common.settings import Settings
from services.common.worker import Background, HistoryRecord, HistoryWorker
from services.deadlines import engine, store
from services.deadlines.engine import Applied, Tracker
from services.deadlines.procedure_files import load_book
from services.deadlines.procedures import ProcedureBook, ProcedureError

log = logging.getLogger(__name__)
GAUGE_REFRESH_S = 2.0
FIRING_FAILURES = Counter("casefeedback_deadline_firing_failures", "Ticks that could not fire a case's due "
                          "deadlines (the case is left as it was and tried again)", ["service"])


class TrackingWorker(HistoryWorker):
    """A HistoryWorker that keeps cases and their deadlines through the shared engine."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer):
        super().__init__(settings, pool, producer)
        self.book: ProcedureBook = load_book(settings.procedures_dir, settings.default_procedure)
        self.owned: set[int] = set()
        self.ticks = 0
        self._failing: set[str] = set()  # cases whose firing raised (logged once each)

    def make_tracker(self) -> Tracker[Any]:
        """The service's tracker (domain plus storage)."""
        raise NotImplementedError

    def tracker(self) -> Tracker[Any]:
        """The service's tracker, built once, deciding with the settings' declared lateness per source, whose
        firing never raises (a failing case is logged and left)."""
        if not hasattr(self, "_tracker"):
            declared = engine.with_lateness(self.make_tracker(), self.settings.source_lateness)
            self._tracker = engine.guard_firing(declared, self._firing_failed)
        return self._tracker

    def _firing_failed(self, state: Any, exc: Exception) -> None:
        FIRING_FAILURES.labels(self.name).inc()
        subject = str(getattr(state, "subject", "?"))
        # Every tick meets the case again: say so once per case, count every time.
        level = logging.DEBUG if subject in self._failing else logging.ERROR
        self._failing.add(subject)
        log.log(level, "%s could not fire the due deadlines of %s, left as it was: %s: %s", self.name, subject,
                type(exc).__name__, exc)

    async def setup(self) -> None:
        async with self.pool.acquire() as conn:
            await store.load_procedures(conn, self.book)
            for procedure_id in self.book.ids():
                procedure = self.book.current(procedure_id)
                assert procedure is not None
                await store.store_procedure(conn, procedure)

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        await super().on_assigned(partitions)
        self.owned |= {tp.partition for tp in partitions if tp.topic == TOPIC_EVENTS}

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.owned -= {tp.partition for tp in partitions if tp.topic == TOPIC_EVENTS}

    async def apply(self, conn: asyncpg.Connection, events: Sequence[HistoryRecord]) -> None:
        applied = await self.apply_cases(conn, events)
        self.observe(applied)
        if applied.refusals:
            letters = [_letter(event, reason, f"{self.name}: {why}") for event, reason, why in applied.refusals]
            await send_deadletters(self.producer, letters)
        await self.after_apply(conn, events, applied)

    async def after_apply(self, conn: asyncpg.Connection, events: Sequence[HistoryRecord], applied: Applied) -> None:
        """What the service adds once a batch is applied and its refusals dead-lettered (same transaction)."""

    async def apply_cases(self, conn: asyncpg.Connection, events: Sequence[HistoryRecord]) -> Applied:
        """Apply through the engine; a case under a procedure version another worker stored is retried once
        after reading the stored documents (nothing is written before the domain has decided)."""
        try:
            return await engine.apply(self.tracker(), conn, events)
        except ProcedureError:
            await store.load_procedures(conn, self.book)
            return await engine.apply(self.tracker(), conn, events)

    def observe(self, applied: Applied) -> None:
        """Count what an apply or tick stored (counters of this worker only)."""

    def background(self) -> list[Background]:
        return [self._tick_loop, self._gauge_loop]

    async def tick_once(self, now: datetime | None = None) -> int:
        """Fire due timers of the owned partitions until none is left; return events stored."""
        total = 0
        while True:
            async with self.pool.acquire() as conn:
                applied = await engine.tick(self.tracker(), conn, sorted(self.owned), now or datetime.now(UTC),
                                            grace=timedelta(seconds=self.settings.out_of_order_grace_s))
            self.observe(applied)
            total += len(applied.stored)
            # A round that fired nothing (every case it found failed to fire) would find the same cases again.
            if applied.cases == 0 or not (applied.stored or applied.duplicates):
                return total

    async def _tick_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.tick_once()
                self.ticks += 1
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("%s tick failed, retrying: %s", self.name, type(exc).__name__)
            await _sleep(stop, self.settings.tick_interval_s)

    async def _gauge_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self.pool.acquire() as conn:
                    await self.refresh_gauges(conn, sorted(self.owned), datetime.now(UTC))
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("%s gauge refresh failed: %s", self.name, type(exc).__name__)
            await _sleep(stop, GAUGE_REFRESH_S)

    async def refresh_gauges(self, conn: asyncpg.Connection, partitions: list[int], now: datetime) -> None:
        """Set the service's gauges from its tables, over the owned partitions only."""


def _letter(event: HistoryRecord, reason: str, why: str) -> dict[str, Any]:
    value = json.dumps(event.body).encode()
    return deadletter_value(reason, why, TOPIC_EVENTS, event.partition, None,
                            str(event.body.get("subject", "")).encode(), value)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
