"""Fault run: SIGKILL the embedded PostgreSQL's postmaster while `casefeedback up` takes a stream of events.

Afterwards every event sent must be in the history or dead-lettered, exactly once, and `casefeedback
replay` must exit 0; otherwise the run exits 1. Prints sent, in history, dead-lettered, lost, duplicated
and the replay's result:

    .venv/bin/python -m tests.benchmarks.fault_db_kill [--events 20000] [--rate 2000] [--quick]

(`--quick`: 600 events at 300 a second, to prove it runs.)

`tests/e2e/test_up_faults.py` runs the same with fewer events.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.registry import TOPIC_DEADLETTER
from services.common.settings import KafkaSettings
from tests.benchmarks.bench_intake import make_events, produce
from tests.e2e.conftest import UpProcess, replay_when_caught_up, start_up, stop_up


@dataclass
class Figures:
    """What became of the events sent."""

    sent: int
    in_history: int
    deadlettered: int
    lost: int
    duplicated: int
    replay_exit: int
    up_output: str
    replay_output: str = ""

    def held(self) -> bool:
        """Every event sent ended recorded or dead-lettered exactly once, and replay agreed."""
        return (self.lost == 0 and self.duplicated == 0 and self.in_history + self.deadlettered == self.sent
                and self.replay_exit == 0)

    def line(self) -> str:
        return (f"sent {self.sent}, in history {self.in_history}, dead-lettered {self.deadlettered}, "
                f"lost {self.lost}, duplicated {self.duplicated}; replay exited {self.replay_exit}")


def postmaster(up: UpProcess) -> psutil.Process:
    """The embedded PostgreSQL's postmaster: the `postgres` child of `up` itself."""
    for child in psutil.Process(up.proc.pid).children():
        if child.name() == "postgres":
            return child
    raise AssertionError("no postgres child of casefeedback up")


async def history_ids(url: str, ids: list[str]) -> Counter[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id FROM events WHERE id = any($1::text[])", ids)
    finally:
        await conn.close()
    return Counter(r["id"] for r in rows)


async def deadlettered_ids(kafka: KafkaSettings, ids: set[str]) -> Counter[str]:
    """Ids of the sent events among the dead letters (each letter carries the original value)."""
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: Counter[str] = Counter()
    try:
        parts = [TopicPartition(TOPIC_DEADLETTER, p) for p in consumer.partitions_for_topic(TOPIC_DEADLETTER) or ()]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    found.update(_letter_id(record.value, ids))
    finally:
        await consumer.stop()
    return found


def _letter_id(value: bytes, ids: set[str]) -> list[str]:
    try:
        original = json.loads(json.loads(value)["value"])
        return [original["id"]] if original.get("id") in ids else []
    except (ValueError, KeyError, TypeError):
        return []


async def _stream_with_kill(up: UpProcess, events: list[dict[str, Any]], rate: float) -> None:
    kafka = KafkaSettings(bootstrap_servers=up.run_info["kafka_bootstrap_servers"])
    sending = asyncio.ensure_future(produce(kafka, events, rate))
    await asyncio.sleep(len(events) / rate / 2)
    os.kill(postmaster(up).pid, signal.SIGKILL)
    await sending


async def _settle(up: UpProcess, ids: list[str], timeout_s: float) -> tuple[Counter[str], Counter[str]]:
    """Wait until every id is in the history or dead-lettered (or the time is up); both tallies."""
    kafka = KafkaSettings(bootstrap_servers=up.run_info["kafka_bootstrap_servers"])
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            recorded = await history_ids(up.run_info["database_url"], ids)
        except (OSError, asyncpg.PostgresError):  # the database may still be restarting
            recorded = Counter()
        dead = await deadlettered_ids(kafka, set(ids))
        if len(set(recorded) | set(dead)) >= len(ids) or time.monotonic() > deadline:
            return recorded, dead
        await asyncio.sleep(1)


def run_fault(home: Path, count: int, rate: float) -> Figures:
    """Start `up`, stream `count` events at `rate`, kill the postmaster half-way; what became of them."""
    up = start_up(home)
    try:
        events = make_events(count, f"fault-{uuid.uuid4().hex[:8]}")
        ids = [e["id"] for e in events]
        asyncio.run(_stream_with_kill(up, events, rate))
        recorded, dead = asyncio.run(_settle(up, ids, 180))
        replayed = replay_when_caught_up(up, 120)
    finally:
        rest = stop_up(up) if up.proc.poll() is None else ""
    both = recorded + dead
    return Figures(sent=len(ids), in_history=len(recorded), deadlettered=len(dead),
                   lost=sum(1 for i in ids if i not in both), duplicated=sum(1 for n in both.values() if n > 1),
                   replay_exit=replayed.returncode, up_output="\n".join(up.lines) + "\n" + rest,
                   replay_output=replayed.stdout + replayed.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, help="events sent (default 20,000; 600 with --quick)")
    parser.add_argument("--rate", type=float, help="events per second sent (default 2,000; 300 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, in seconds: prove the fault run works")
    args = parser.parse_args()
    events, rate = (600, 300.0) if args.quick else (20_000, 2000.0)
    with tempfile.TemporaryDirectory(prefix="casefeedback-fault-") as home:
        figures = run_fault(Path(home), args.events or events, args.rate or rate)
    print(figures.up_output)
    if figures.replay_exit != 0:
        print(figures.replay_output)
    print(figures.line())
    raise SystemExit(0 if figures.held() else 1)


if __name__ == "__main__":
    main()
