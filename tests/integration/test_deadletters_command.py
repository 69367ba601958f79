"""`casefeedback deadletters` on the real broker: hostile dead letters never stop it, and it lists every record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.registry import TOPIC_DEADLETTER
from services.common.deadletter import deadletter_value, encoded
from services.common.settings import Settings
from tests.helpers import unique

NESTED = b"[" * 2000 + b"]" * 2000  # intake refuses it; the letter carries it whole


def hostile(marker: str) -> list[tuple[bytes | None, list[tuple[str, bytes]]]]:
    """Dead letters (value, record headers) as intake writes them, and as no service ever should."""
    nested = deadletter_value("not_json", f"{marker} nested too deeply", "feedback.complaints", 0, 7, b"k", NESTED,
                              headers=[("ce_id", b"nested-1"), ("ce_type", b"complaint.received")])
    wrong = {"reason": 7, "detail": f"{marker} wrong types", "topic": "feedback.surveys", "partition": "0",
             "offset": -1, "headers": {"ce_id": "x"}, "value": "%%%", "value_encoding": "base64"}
    escapes = "\x1b[2J\x1b]0;owned\x07\nforged line \u202e"
    ansi = deadletter_value("invalid_data", f"{marker} ansi {escapes}", "feedback.complaints", 1, 3, None, b"{}",
                            headers=[("ce_subject", b"\xff\xfe")])
    huge = {"reason": "too_large", "detail": f"{marker} huge " + "d" * 400_000, "topic": "t" * 100_000,
            "value": "[" * 50_000}
    return [(encoded(nested), []), (json.dumps(wrong).encode(), [("ce_id", b"\x1b[31m")]), (encoded(ansi), []),
            (json.dumps(huge).encode(), [("\x00", b"\xff" * 1000)]), (NESTED, []), (b"\xff\xfe not json", []),
            (None, []), (b'"just a string"', []), (b'{"reason": "not_json", "partition": 1e999}', [])]


async def publish(settings: Settings, records: list[tuple[bytes | None, list[tuple[str, bytes]]]]) -> dict[int, int]:
    """Send the records one by one; per partition, the offset after the last one the broker acknowledged."""
    producer = AIOKafkaProducer(**settings.kafka.client_kwargs())
    await producer.start()
    after: dict[int, int] = {}
    try:
        for value, headers in records:
            sent = await (await producer.send(TOPIC_DEADLETTER, value, key=b"hostile", headers=headers))
            after[sent.partition] = max(after.get(sent.partition, 0), sent.offset + 1)
        return after
    finally:
        await producer.stop()


async def records_on_topic(settings: Settings, acknowledged: dict[int, int]) -> int:
    """How many records the topic holds, read independently up to its end offsets and past every acknowledged one."""
    consumer = AIOKafkaConsumer(**settings.kafka.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC_DEADLETTER, p) for p in consumer.partitions_for_topic(TOPIC_DEADLETTER)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        reported = await consumer.end_offsets(partitions)
        end = {tp: max(at, acknowledged.get(tp.partition, 0)) for tp, at in reported.items()}
        count = 0
        while any([await consumer.position(tp) < at for tp, at in end.items()]):
            count += sum(len(rs) for rs in (await consumer.getmany(timeout_ms=500)).values())
        return count
    finally:
        await consumer.stop()


def cli(settings: Settings, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CASEFEEDBACK_HOME": str(home), "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers
           or ""}
    return subprocess.run([sys.executable, "-m", "services.cli", "deadletters", *args], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
async def on_topic(settings: Settings) -> tuple[str, int]:
    """The hostile letters published, and how many records the topic then holds."""
    marker = unique("hostile")
    return marker, await records_on_topic(settings, await publish(settings, hostile(marker)))


def rows(settings: Settings, home: Path, *args: str) -> list[dict[str, Any]]:
    result = cli(settings, home, "--format", "json", *args)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


async def test_every_record_is_listed_in_json_the_hostile_ones_as_far_as_they_can_be_read(
        settings: Settings, on_topic: tuple[str, int], tmp_path: Path) -> None:
    marker, total = on_topic
    result = cli(settings, tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert len(listed) == total
    assert result.stderr.startswith(f"read {total} record(s) from {TOPIC_DEADLETTER} up to offsets ")
    mine = {row["detail"].split(" ")[1]: row for row in listed if (row["detail"] or "").startswith(marker)}
    assert (mine["nested"]["reason"], mine["nested"]["id"], mine["nested"]["offset"]) == ("not_json", "nested-1", 7)
    assert mine["wrong"]["unreadable"] == ["reason", "partition", "offset", "headers", "value"]
    assert mine["wrong"]["topic"] == "feedback.surveys"
    assert mine["ansi"]["detail"].endswith("\\x1b[2J\\x1b]0;owned\\x07\\nforged line \\u202e")
    assert mine["huge"]["detail"].endswith("d…") and mine["huge"]["topic"].endswith("t…")
    assert Counter(tuple(row["unreadable"]) for row in listed)[("letter",)] >= 4  # nested, bytes, tombstone, string
    assert any(row["reason"] == "not_json" and row["unreadable"] == ["partition"] for row in listed)


async def test_the_table_lists_every_record_one_line_each_with_no_terminal_escapes(
        settings: Settings, on_topic: tuple[str, int], tmp_path: Path) -> None:
    marker, total = on_topic
    result = cli(settings, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{total} dead letter(s) shown, of {total} on {TOPIC_DEADLETTER}"
    assert len(lines) == total + 2 and "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert sum(marker in line for line in lines) == 4


@pytest.mark.parametrize("reason", ["not_json", "invalid_data", "too_large", "7"])
async def test_reason_filters_keep_their_reason_in_json_and_table(
        settings: Settings, on_topic: tuple[str, int], tmp_path: Path, reason: str) -> None:
    marker, total = on_topic
    listed = rows(settings, tmp_path, "--reason", reason)
    assert all(row["reason"] == reason for row in listed)
    assert bool(listed) == (reason != "7")  # a reason that is not text is unreadable, never matched as text
    table = cli(settings, tmp_path, "--reason", reason, "--since", "2000-01-01")
    assert table.returncode == 0 and table.stdout.startswith(f"{len(listed)} dead letter(s) shown, of {total}")
