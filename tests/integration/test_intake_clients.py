"""Real clients the project did not write send the shipped examples through the embedded broker; intake accepts each.

The official CloudEvents Python SDK (its Kafka binding, structured and binary content mode, sent
with confluent-kafka), confluent-kafka (librdkafka) with its default producer settings, and aiokafka.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from confluent_kafka import Producer

from schemas.registry import TOPIC_COMPLAINTS, inbound_topic
from services.common.settings import Settings
from services.intake.worker import IntakeWorker
from tests.helpers import produce, running, unique
from tests.integration.test_intake_flow import dead_letters, eventually, metric

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples" / "inbound.jsonl"
Message = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


def examples(prefix: str) -> list[dict[str, Any]]:
    """The shipped inbound examples, with ids and subjects of their own."""
    out = []
    for line in EXAMPLES.read_text().splitlines():
        event = json.loads(line)
        event["id"], event["subject"] = f"{prefix}-{event['id']}", f"{prefix}-{event['subject']}"
        if "survey_id" in event["data"]:
            event["data"]["survey_id"] = f"{prefix}-{event['data']['survey_id']}"
        out.append(event)
    return out


def plain(event: dict[str, Any]) -> Message:
    return inbound_topic(event["type"]), event["subject"].encode(), json.dumps(event).encode(), []


def sdk(event: dict[str, Any], binding: Callable[..., ce_kafka.KafkaMessage]) -> Message:
    attributes = {k: v for k, v in event.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])
    message = binding(SdkEvent(attributes, event["data"]), JSONFormat())  # key: the SDK's default (none here)
    key = message.key.encode() if isinstance(message.key, str) else message.key
    return inbound_topic(event["type"]), key, message.value, list(message.headers.items())


def send_with_confluent(settings: Settings, messages: list[Message]) -> None:
    """librdkafka with its default producer settings (idempotence, batching, its own partitioner)."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for topic, key, value, headers in messages:
        producer.produce(topic, value=value, key=key, headers=headers or None)
    assert producer.flush(30) == 0


async def send_with_aiokafka(settings: Settings, messages: list[Message]) -> None:
    for topic, key, value, _ in messages:
        await produce(settings, topic, [value], [key])


async def recorded(pool: asyncpg.Pool, ids: list[str]) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE id = any($1::text[])", ids))


@pytest.mark.parametrize("client", ["cloudevents-structured", "cloudevents-binary", "confluent-kafka", "aiokafka"])
async def test_each_client_sends_the_shipped_examples_and_each_is_accepted(
        client: str, settings: Settings, pool: asyncpg.Pool) -> None:
    events = examples(unique(client))
    mismatches = metric("casefeedback_key_mismatch_total")
    # unkeyed records (the SDK's) land on any partition, so a case's acts arrive out of order: each waits for
    # the act it needs for the grace time, which must outlast a loaded machine's delays (the default's 30 s)
    async with running(IntakeWorker, settings, out_of_order_grace_s=30):
        if client == "aiokafka":
            await send_with_aiokafka(settings, [plain(e) for e in events])
        else:
            binding = ce_kafka.to_binary if client == "cloudevents-binary" else ce_kafka.to_structured
            messages = [plain(e) if client == "confluent-kafka" else sdk(e, binding) for e in events]
            await asyncio.to_thread(send_with_confluent, settings, messages)
        ids = [e["id"] for e in events]
        await eventually(lambda: _all(pool, ids), 60)
    if client.startswith("cloudevents"):  # the SDK keys by its `partitionkey` extension: none, so no key
        assert metric("casefeedback_key_mismatch_total") - mismatches >= len(events)


async def _all(pool: asyncpg.Pool, ids: list[str]) -> bool:
    return await recorded(pool, ids) == len(ids)


async def test_a_binary_mode_event_in_either_mode_is_one_event(settings: Settings, pool: asyncpg.Pool) -> None:
    event = examples(unique("both"))[0]
    messages = [sdk(event, ce_kafka.to_structured), sdk(event, ce_kafka.to_binary)]
    duplicates = metric("casefeedback_events_total", service="intake", type=event["type"], result="duplicate")
    async with running(IntakeWorker, settings):
        await asyncio.to_thread(send_with_confluent, settings, messages)
        await eventually(lambda: _all(pool, [event["id"]]))
        await eventually(_async(lambda: metric("casefeedback_events_total", service="intake", type=event["type"],
                                               result="duplicate") > duplicates))


async def test_a_refused_binary_mode_event_keeps_its_headers_in_the_dead_letter(settings: Settings) -> None:
    event = examples(unique("lost"))[0]
    event["data"]["serious"] = "very"
    topic, key, _, headers = sdk({**event, "data": {"service_area": "housing"}}, ce_kafka.to_binary)
    async with running(IntakeWorker, settings):
        await asyncio.to_thread(send_with_confluent, settings, [(topic, event["subject"].encode(),
                                                                 b'{"serious": "very"}', headers)])
        (letter,) = await dead_letters(settings, event["subject"], 1)
    assert letter["reason"] == "invalid_data" and "data." in letter["detail"]
    assert ["ce_id", event["id"]] in letter["headers"] and ["ce_type", event["type"]] in letter["headers"]
    assert letter["topic"] == TOPIC_COMPLAINTS


def _async(check: Callable[[], bool]) -> Callable[[], Any]:
    async def wrapped() -> bool:
        return check()
    return wrapped
