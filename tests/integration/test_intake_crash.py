"""Crash safety: SIGKILL intake (a real process) at random moments while 20,000 records flow; no loss, no double."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.registry import TOPIC_DEADLETTER, TOPIC_EVENTS, inbound_topic
from services.common import eventstore
from services.common.relay import seq_of
from services.common.settings import Settings
from tests.helpers import unique
from tests.integration.test_intake_flow import acknowledged, compliment, received

TOTAL = 20_000


def stream(marker: str, rng: random.Random) -> tuple[list[tuple[str, bytes, bytes]], set[str], set[str]]:
    """(topic, key, value) records in send order, the valid ids, and the keys of the bad records."""
    out: list[tuple[str, bytes, bytes]] = []
    valid: set[str] = set()
    bad: set[str] = set()
    sent: list[tuple[str, bytes, bytes]] = []
    i = 0
    while len(out) < TOTAL:
        i += 1
        roll = rng.random()
        if roll < 0.1 and sent:  # a duplicate: the same record again, later
            out.append(rng.choice(sent))
        elif roll < 0.2:  # a bad record, dead-lettered under its own key
            key = f"{marker}-bad-{i}"
            bad.add(key)
            out.append(("feedback.complaints", key.encode(), rng.choice(_BAD) + key.encode()))
        else:
            for event in _valid(f"{marker}-{i}", roll):
                valid.add(event["id"])
                record = (inbound_topic(event["type"]), event["subject"].encode(), json.dumps(event).encode())
                out.append(record)
                sent.append(record)
    return out, valid, bad


_BAD = [b"not json ", b'{"specversion": "1.0", "id": 5, "pad": "', b'{"type": "complaint.reopened", "x": "']


def _valid(subject: str, roll: float) -> list[dict[str, Any]]:
    if roll < 0.5:
        return [compliment(subject)]
    if roll < 0.52:  # an acknowledgement that arrives before its case: held, then released
        return [acknowledged(subject), received(subject)]
    return [received(subject), acknowledged(subject)]


def start_intake(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """`casefeedback run intake` as a separate process on the session's broker and database."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": str(settings.kafka.bootstrap_servers),
           "DATABASE_URL": settings.require_database(), "CASEFEEDBACK_HTTP_PORT": "0",
           "CASEFEEDBACK_OUT_OF_ORDER_GRACE_S": "120", "CASEFEEDBACK_BATCH_SIZE": "500"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.cli", "run", "intake"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)


async def produce_all(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    """Send the stream in chunks, as upstream systems would, over several seconds."""
    producer = AIOKafkaProducer(**settings.kafka.client_kwargs(), linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(records), 1000):
            chunk = records[start:start + 1000]
            await asyncio.gather(*[await producer.send(t, v, key=k) for t, k, v in chunk])
            await asyncio.sleep(0.3)
    finally:
        await producer.stop()


async def kill_repeatedly(settings: Settings, log: Path, rng: random.Random, kills: int,
                          progress: Any) -> tuple[subprocess.Popen[bytes], list[int]]:
    """SIGKILL intake `kills` times, each at a random moment after it resumed work; the last one and progress."""
    proc, at_kill, last = start_intake(settings, log), [], 0
    for _ in range(kills):
        deadline = time.monotonic() + 40
        while await progress() <= last and time.monotonic() < deadline:  # wait until it works again
            await asyncio.sleep(0.05)
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        last = await progress()
        at_kill.append(last)
        proc = start_intake(settings, log)
    return proc, at_kill


async def test_sigkill_at_random_moments_loses_and_doubles_nothing(settings: Settings, pool: asyncpg.Pool,
                                                                    tmp_path: Path) -> None:
    marker, rng = unique("crash"), random.Random(4242)
    records, valid, bad = stream(marker, rng)
    log = tmp_path / "intake.log"
    sending = asyncio.ensure_future(produce_all(settings, records))
    proc, at_kill = await kill_repeatedly(settings, log, rng, 4, lambda: _recorded_count(pool, valid))
    try:
        await sending
        await _until(lambda: _recorded_count(pool, valid), len(valid), 150, proc, log)
        events = await _published(settings, marker, valid, 90)
        letters = await _dead_letters(settings, marker, bad, 90)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, subject, version FROM events WHERE subject LIKE $1", f"{marker}-%")
        _, broken = await eventstore.verify_chain(conn)
    assert sorted(r["id"] for r in rows) == sorted(valid)  # every valid event exactly once, nothing else
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in _versions(rows).values())
    assert broken is None
    assert set(events) == valid  # on casefeedback.events at least once, nothing else
    assert letters == bad  # every bad record dead-lettered, nothing else
    print(f"valid events recorded at each SIGKILL: {at_kill} of {len(valid)}; bad records {len(bad)}")
    assert sum(0 < n < len(valid) for n in at_kill) >= 2, f"kills did not hit intake mid-stream: {at_kill}"


def _versions(rows: list[asyncpg.Record]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["subject"], []).append(r["version"])
    return out


async def _recorded_count(pool: asyncpg.Pool, ids: set[str]) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE id = any($1::text[])", list(ids)))


async def _until(measure: Any, target: int, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while (got := await measure()) < target:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{got} of {target} recorded; intake exit {proc.poll()}; log:\n"
                                 + log.read_text()[-3000:])
        await asyncio.sleep(0.5)


async def _scan(settings: Settings, topic: str, keep: Any, done: Any, timeout_s: float) -> None:
    """Read `topic` from the beginning, feeding each record to `keep`, until `done()`."""
    consumer = AIOKafkaConsumer(**settings.kafka.client_kwargs(), auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while not done():
            assert time.monotonic() < deadline, f"{topic}: not complete within {timeout_s} s"
            for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in batch:
                    keep(record)
    finally:
        await consumer.stop()


async def _published(settings: Settings, marker: str, valid: set[str], timeout_s: float) -> set[str]:
    seen: set[str] = set()
    prefix = marker.encode()

    def keep(record: Any) -> None:
        if record.key.startswith(prefix):
            assert seq_of(record.headers) is not None
            seen.add(json.loads(record.value)["id"])

    await _scan(settings, TOPIC_EVENTS, keep, lambda: valid <= seen, timeout_s)
    return seen


async def _dead_letters(settings: Settings, marker: str, bad: set[str], timeout_s: float) -> set[str]:
    seen: set[str] = set()
    prefix = marker.encode()

    def keep(record: Any) -> None:
        if (record.key or b"").startswith(prefix):
            seen.add(json.loads(record.value)["key"])

    await _scan(settings, TOPIC_DEADLETTER, keep, lambda: bad <= seen, timeout_s)
    return seen
