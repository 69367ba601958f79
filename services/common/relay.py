"""The relay: publishes the history to `casefeedback.events` (and alerts to `casefeedback.alerts`) in seq order.

This is the transactional outbox with the history itself as the outbox: an event is published
only after it is committed, and the relay's position advances only after the broker acknowledged
every record up to it. A crash between the two republishes a tail of events, which consumers
drop by their per-partition seq (see `positions`). One relay runs at a time across all processes
(a PostgreSQL advisory lock); the others stand by and take over when its session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY, Counter, Gauge

from schemas.registry import ALERT_TYPES, TOPIC_ALERTS, TOPIC_EVENTS
from services.common.eventstore import EVENTS_CHANNEL

log = logging.getLogger(__name__)
RELAY_LOCK = 7_031_966
SEQ_HEADER = "casefeedback-seq"
RECORDED_HEADER = "casefeedback-recorded-at"
BACKLOG_INTERVAL_S = 2.0


class RelayMetrics:
    """The relay's figures; registered only in processes that run a relay (a worker without one exports none)."""

    def __init__(self) -> None:
        self.unpublished = Gauge("casefeedback_relay_unpublished_events",
                                 "History events recorded but not yet published to casefeedback.events",
                                 registry=REGISTRY)
        self.published = Counter("casefeedback_relay_published_events",
                                 "History events this process published to casefeedback.events", registry=REGISTRY)


@functools.cache
def relay_metrics() -> RelayMetrics:
    """The process's relay metrics (created on first use)."""
    return RelayMetrics()


def _headers(seq: int, recorded_at: bytes) -> list[tuple[str, bytes]]:
    """Kafka headers carrying the history position and acceptance time beside the unchanged body."""
    return [(SEQ_HEADER, str(seq).encode()), (RECORDED_HEADER, recorded_at)]


def seq_of(headers: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]) -> int | None:
    """The history seq a record of `casefeedback.events` carries, if any."""
    for key, value in headers or ():
        if key == SEQ_HEADER:
            return int(value)
    return None


def recorded_at_of(headers: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]) -> datetime | None:
    """When the history accepted the event a record carries, if stated."""
    for key, value in headers or ():
        if key == RECORDED_HEADER:
            return datetime.fromisoformat(value.decode())
    return None


class Relay:
    """Follows the history by seq and publishes it; run one per process, one is active."""

    def __init__(self, database_url: str, producer: AIOKafkaProducer, batch: int = 2000, name: str = "events"):
        self._url = database_url
        self._producer = producer
        self._batch = batch
        self._name = name
        self._wake = asyncio.Event()
        self.published_seq = 0
        self._metrics = relay_metrics()

    async def watch_backlog(self, stop: asyncio.Event) -> None:
        """Until `stop`, export how many recorded events are not published yet, as the database says.

        Read from the database by every relay process, leading or standing by, so a stalled leader shows.
        """
        conn = await asyncpg.connect(self._url)
        try:
            while not stop.is_set():
                backlog = await conn.fetchval(
                    "SELECT greatest(0, (SELECT coalesce(max(seq), 0) FROM chain_head) - "
                    "coalesce((SELECT seq FROM relay_position WHERE name = $1), 0))", self._name)
                self._metrics.unpublished.set(int(backlog))
                await _wait(stop, BACKLOG_INTERVAL_S)
        finally:
            await conn.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; waits for the leader lock first."""
        conn = await asyncpg.connect(self._url)
        try:
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK):
                    await self._lead(conn, stop)
                    return
                await _wait(stop, 1.0)
        finally:
            await conn.close()

    async def _lead(self, conn: asyncpg.Connection, stop: asyncio.Event) -> None:
        await conn.add_listener(EVENTS_CHANNEL, lambda *_: self._wake.set())
        await conn.execute(
            "INSERT INTO relay_position(name, seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING", self._name
        )
        self.published_seq = int(await conn.fetchval("SELECT seq FROM relay_position WHERE name = $1", self._name))
        while not stop.is_set():
            # Cleared before looking, so a notification that arrives while publishing is not lost (it would
            # otherwise wait for the next one, or a second).
            self._wake.clear()
            if not await self.publish_once(conn):
                await _wait_any(stop, self._wake, 1.0)

    async def publish_once(self, conn: asyncpg.Connection) -> int:
        """Publish the next batch after the relay's position; return how many were published."""
        # The stored JSON text is published as it is: no decode and re-encode per event.
        rows = await conn.fetch(
            "SELECT seq, subject, type, recorded_at, body::text AS body FROM events WHERE seq > $1 "
            "ORDER BY seq LIMIT $2", self.published_seq, self._batch,
        )
        if not rows:
            return 0
        batches = _Batches(self._producer)
        stamps: dict[datetime, bytes] = {}  # events appended together share their acceptance time
        for row in rows:
            value, key, recorded_at = row["body"].encode(), row["subject"].encode(), row["recorded_at"]
            if recorded_at not in stamps:
                stamps[recorded_at] = recorded_at.isoformat().encode()
            headers = _headers(row["seq"], stamps[recorded_at])
            await batches.add(TOPIC_EVENTS, key, value, headers)
            if row["type"] in ALERT_TYPES:
                await batches.add(TOPIC_ALERTS, key, value, headers)
        await batches.flush()
        self.published_seq = int(rows[-1]["seq"])
        await conn.execute("UPDATE relay_position SET seq = $2 WHERE name = $1", self._name, self.published_seq)
        self._metrics.published.inc(len(rows))
        return len(rows)


class _Batches:
    """Records gathered into one record batch per partition and sent batch by batch, in order.

    Cheaper than a send per record (one future per batch, no per-record accumulator work). The
    partition is the one the producer would choose for the key (Kafka's murmur2 default
    partitioner, as Java clients do), remembered for recently seen keys.
    """

    def __init__(self, producer: AIOKafkaProducer):
        self._producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._sent: list[asyncio.Future[Any]] = []
        self._partitions: dict[str, int] = {}

    async def add(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        if topic not in self._partitions:
            self._partitions[topic] = len(await self._producer.partitions_for(topic))
        partition = _partition(key, self._partitions[topic])
        batch = self._open.get((topic, partition))
        if batch is None:
            batch = self._open[(topic, partition)] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # full: send it
            self._sent.append(await self._producer.send_batch(batch, topic, partition=partition))
            batch = self._open[(topic, partition)] = self._producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=headers)  # the first always fits

    async def flush(self) -> None:
        """Send what is gathered and wait until the broker acknowledged every batch."""
        for (topic, partition), batch in self._open.items():
            self._sent.append(await self._producer.send_batch(batch, topic, partition=partition))
        self._open.clear()
        await asyncio.gather(*self._sent)
        self._sent.clear()


@functools.lru_cache(maxsize=16384)
def _partition(key: bytes, partitions: int) -> int:
    """Kafka's default partition for a key (murmur2, as Java clients and aiokafka choose it)."""
    return int(DefaultPartitioner()(key, list(range(partitions)), None))


async def _wait(stop: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    tasks = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
