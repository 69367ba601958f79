"""Records of any size or content end as dead letters the broker takes; none stops intake."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from schemas.registry import TOPIC_COMPLAINTS, TOPIC_DEADLETTER
from services.common.settings import Settings
from services.intake.worker import IntakeWorker
from tests.helpers import read_topic, running, unique
from tests.integration.test_intake_flow import eventually, has_events, received

CONTROL = b"\x01" * 400_000  # 2.4 MB once JSON-escaped (\u0001): more than one producer request may hold
NEAR_LIMIT = b"\x02" * 1_040_000  # just under Kafka's default 1 MiB broker limit for one record


async def produce_large(settings: Settings, values: list[bytes], keys: list[bytes], headers: list[Any]) -> None:
    """Send records as an upstream producer configured up to the broker's limit would."""
    producer = AIOKafkaProducer(**settings.kafka.client_kwargs(), max_request_size=1024 * 1024 + 4096)
    await producer.start()
    try:
        for value, key, hdrs in zip(values, keys, headers, strict=True):
            await (await producer.send(TOPIC_COMPLAINTS, value, key=key, headers=hdrs))
    finally:
        await producer.stop()


async def letters_keyed(settings: Settings, key: str, n: int) -> list[dict[str, Any]]:
    """All dead letters whose record key is `key`, once at least `n` are there."""
    def mine(records: list[Any]) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in records if r.key == key.encode()]

    records = await read_topic(settings, TOPIC_DEADLETTER, lambda rs: len(mine(rs)) >= n, timeout_s=60)
    return mine(records)


async def test_huge_control_byte_records_are_cut_dead_letters_and_intake_goes_on(
        settings: Settings, pool: asyncpg.Pool) -> None:
    marker, case = unique("oversized"), unique("case")
    values = [f"not json {marker}".encode(), CONTROL, NEAR_LIMIT, json.dumps(received(case)).encode()]
    keys = [marker.encode()] * 3 + [case.encode()]  # one key: the bad records share a partition and a batch
    headers = [[], [("ce_id", b"x-1"), ("trace", b"\xff\x00")], [("ce_type", b"complaint.received")], []]
    async with running(IntakeWorker, settings) as runtime:
        await produce_large(settings, values, keys, headers)
        await eventually(lambda: has_events(pool, case, 1), timeout_s=60)
        letters = await letters_keyed(settings, marker, 3)
        await asyncio.sleep(2)  # a crash and re-read would send the batch's letters again
        assert runtime.loop is not None and runtime.loop.consuming
    again = await letters_keyed(settings, marker, 3)
    assert len(again) == 3, "a dead letter was sent more than once"
    by_offset = sorted(letters, key=lambda letter: letter["offset"])
    assert [letter["reason"] for letter in by_offset] == ["not_json", "too_large", "too_large"]
    for letter, value in zip(by_offset[1:], (CONTROL, NEAR_LIMIT), strict=True):
        assert letter["value_truncated"] is True
        assert letter["value_sha256"] == hashlib.sha256(value).hexdigest()
        assert value.startswith(letter["value"].encode())
    assert by_offset[1]["headers_encoding"] == "base64" and by_offset[1]["headers"][0][0] == "ce_id"
    assert by_offset[2]["headers"] == [["ce_type", "complaint.received"]]
    assert "value_truncated" not in by_offset[0] and by_offset[0]["headers"] == []


def binary_headers(event_id: str, case: str, extensions: int = 0) -> list[tuple[str, bytes]]:
    """A binary-mode complaint.received's headers, its `extensions` 10,000-byte extension headers first."""
    large = [(f"ce_ext{i}", b"x" * 10_000) for i in range(extensions)]
    return [*large, ("ce_specversion", b"1.0"), ("ce_id", event_id.encode()), ("ce_source", b"tests"),
            ("ce_type", b"complaint.received"), ("ce_subject", case.encode()),
            ("ce_time", b"2026-03-02T09:15:00+00:00"), ("content-type", b"application/json")]


async def test_a_binary_record_with_3_mb_of_headers_is_a_too_large_letter_keeping_its_attributes(
        settings: Settings, pool: asyncpg.Pool) -> None:
    marker, big, after, binary_after = unique("big-headers"), unique("case"), unique("case"), unique("case")
    data = json.dumps(received(big)["data"]).encode()
    headers = binary_headers(unique("ev"), big, extensions=300)
    records = [(data, headers), (json.dumps(received(after)).encode(), []),
               (data, binary_headers(unique("ev"), binary_after))]
    producer = AIOKafkaProducer(**settings.kafka.client_kwargs(), max_request_size=8 * 1024 * 1024)
    await producer.start()
    async with running(IntakeWorker, settings) as runtime:
        try:  # one key: the three records share a partition, the big one first
            for value, hdrs in records:
                await (await producer.send(TOPIC_COMPLAINTS, value, key=marker.encode(), headers=hdrs))
        finally:
            await producer.stop()
        await eventually(lambda: has_events(pool, after, 1), timeout_s=60)
        await eventually(lambda: has_events(pool, binary_after, 1), timeout_s=60)
        [letter] = await letters_keyed(settings, marker, 1)
        assert runtime.loop is not None and runtime.loop.consuming
    header_bytes = sum(len(name) + len(value) for name, value in headers)
    assert header_bytes > 3_000_000 and letter["reason"] == "too_large"
    assert f"headers {header_bytes:,}); the limit is 262,144" in letter["detail"]
    assert letter["headers_truncated"] is True and letter["value"] == data.decode()
    kept = [(name, value.encode()) for name, value in letter["headers"]]
    assert set(headers[300:]) <= set(kept) and set(kept) <= set(headers)  # every attribute, each header whole
    assert len(kept) > 90 and len(json.dumps(letter)) + len(marker) <= 1_000_000
    assert not await has_events(pool, big, 1)
