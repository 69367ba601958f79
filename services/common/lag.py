"""Broker-side consumer lag: `casefeedback_consumer_lag_records{service, topic}` (contract section 7).

For the partitions a worker currently owns, the lag is the broker's end offset minus the offset its
consumer group committed there (the start of the partition when the group committed nothing yet). Each
worker exports only its own partitions, so `sum by (service, topic)` across workers is the group's lag.
It is read from the broker, not from what the worker believes, so a worker whose loop is stuck still
shows its lag growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import REGISTRY, Gauge
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)
LAG_INTERVAL_S = 5.0


def lag_gauge(registry: CollectorRegistry = REGISTRY) -> Gauge:
    """The contract's lag gauge, registered once per process."""
    return Gauge("casefeedback_consumer_lag_records",
                 "Records on the broker not yet committed by this service's consumer group (owned partitions)",
                 ["service", "topic"], registry=registry)


CONSUMER_LAG = lag_gauge()


def lag_by_topic(topics: Iterable[str], end: Mapping[TopicPartition, int],
                 committed: Mapping[TopicPartition, int | None], start: Mapping[TopicPartition, int]) -> dict[str, int]:
    """Per topic, the sum over the given partitions of end offset minus committed (or start) offset."""
    lag = dict.fromkeys(topics, 0)
    for tp, last in end.items():
        done = committed.get(tp)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, last - (done if done is not None else start.get(tp, 0)))
    return lag


async def measure(consumer: AIOKafkaConsumer, topics: Iterable[str], owned: set[TopicPartition]) -> dict[str, int]:
    """Ask the broker for the end offsets and the group's committed offsets of the owned partitions."""
    partitions = sorted(owned)
    if not partitions:
        return lag_by_topic(topics, {}, {}, {})
    end = await consumer.end_offsets(partitions)
    committed = {tp: await consumer.committed(tp) for tp in partitions}
    start = await consumer.beginning_offsets([tp for tp, c in committed.items() if c is None]) \
        if None in committed.values() else {}
    return lag_by_topic(topics, end, committed, start)


async def export_lag(service: str, consumer: AIOKafkaConsumer, topics: tuple[str, ...],
                     owned: Callable[[], set[TopicPartition]], stop: asyncio.Event,
                     interval_s: float = LAG_INTERVAL_S) -> None:
    """Every `interval_s`, set the gauge for each topic; a broker that does not answer skips a round."""
    while not stop.is_set():
        try:
            lag = await _unless_stopped(measure(consumer, topics, set(owned())), stop, interval_s)
            for topic, records in (lag or {}).items():
                CONSUMER_LAG.labels(service, topic).set(records)
        except (KafkaError, asyncio.TimeoutError, AssertionError) as exc:  # aiokafka asserts on a closed client
            log.debug("consumer lag not measured this round: %s", type(exc).__name__)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def _unless_stopped(asking: Awaitable[dict[str, int]], stop: asyncio.Event,
                          timeout_s: float) -> dict[str, int] | None:
    """The broker's answer, or None once `stop` is set or `timeout_s` passed: a broker that is gone would
    otherwise hold the worker's stop for aiokafka's whole request timeout."""
    task, stopping = asyncio.ensure_future(asking), asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        return task.result() if task.done() else None
    finally:
        for pending in (task, stopping):
            if not pending.done():
                pending.cancel()
