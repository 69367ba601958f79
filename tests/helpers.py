"""Helpers for integration and end-to-end tests: run workers in-process, read topics, make events."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from services.common.embedded import EmbeddedPostgres
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.worker import Worker


def unique(prefix: str) -> str:
    """An id no other test uses (tests share one broker and database)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def cloudevent(type_: str, subject: str, time_: str, data: dict[str, Any], id_: str | None = None,
               source: str = "tests") -> dict[str, Any]:
    """A CloudEvent as upstream systems send it."""
    return {"specversion": "1.0", "id": id_ or unique("ev"), "source": source, "type": type_,
            "subject": subject, "time": time_, "datacontenttype": "application/json", "data": data}


# Each embedded server's job URLs (each job its own role), by the URL of its role that does every job: a test
# that points `database_url` at a server gets its workers connected as their own services' roles there.
_JOB_URLS: dict[str, dict[str, str]] = {}


def register_roles(server: EmbeddedPostgres) -> None:
    """Remember the job roles of an embedded server (the fixtures that start one call this)."""
    _JOB_URLS[server.service_url] = server.job_urls()


def roles_per_job(settings: Settings) -> Settings:
    """`settings` with each job's own role, where `database_url` is a registered server's every-job role."""
    if settings.job_database_urls or settings.database_url not in _JOB_URLS:
        return settings
    return replace(settings, job_database_urls=_JOB_URLS[settings.database_url])


@asynccontextmanager
async def running(worker_cls: type[Worker], settings: Settings, **changes: Any) -> AsyncIterator[Runtime]:
    """Run a worker in this process (as `casefeedback run` would) for the body of the block, connected as its
    own service's role (and its standby relay as the relay's)."""
    runtime = Runtime(worker_cls, roles_per_job(replace(settings, **changes)))
    stop = asyncio.Event()
    task = asyncio.ensure_future(runtime.run(stop))
    try:
        await wait_for(lambda: runtime.loop is not None and runtime.loop.consuming and bool(runtime.loop.assigned),
                       30, task)
        yield runtime
    finally:
        stop.set()
        await task


async def wait_for(predicate: Callable[[], bool], timeout_s: float, task: asyncio.Future[Any] | None = None) -> None:
    """Poll `predicate` until true; fail after `timeout_s` or if `task` ended first."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if task is not None and task.done():
            task.result()
            raise AssertionError("worker stopped before it was ready")
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)


async def produce(settings: Settings, topic: str, values: list[bytes], keys: list[bytes | None] | None = None) -> None:
    """Send raw values to a topic and wait for the acks."""
    producer = AIOKafkaProducer(**settings.kafka.client_kwargs())
    await producer.start()
    try:
        futures = [await producer.send(topic, v, key=(keys[i] if keys else None)) for i, v in enumerate(values)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def send_events(settings: Settings, events: list[dict[str, Any]]) -> None:
    """Send CloudEvents to their inbound topics keyed by subject."""
    from schemas.registry import inbound_topic

    producer = AIOKafkaProducer(**settings.kafka.client_kwargs())
    await producer.start()
    try:
        futures = [await producer.send(inbound_topic(e["type"]), json.dumps(e).encode(), key=e["subject"].encode())
                   for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str, until: Callable[[list[ConsumerRecord]], bool],
                     timeout_s: float = 30) -> list[ConsumerRecord]:
    """Read a topic from the beginning (no group) until `until(records)` holds; fail on timeout."""
    consumer = AIOKafkaConsumer(**settings.kafka.client_kwargs(), auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        from aiokafka import TopicPartition

        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: condition not met within {timeout_s} s ({len(records)} records read)")
            batch = await consumer.getmany(timeout_ms=200)
            for rs in batch.values():
                records.extend(rs)
        return records
    finally:
        await consumer.stop()


def bodies(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
    """Decoded JSON objects of records; a value that is not one (another test's hostile dead letter on the shared
    broker, e.g. 2,000 nested arrays) is left out."""
    out = []
    for r in records:
        try:
            value = json.loads(r.value)
        except (ValueError, RecursionError, TypeError):
            continue
        if isinstance(value, dict):
            out.append(value)
    return out
