"""Benchmark: events per second the metrics service applies, and the delay from an inbound record
to its effect on `/metrics` at 500 events/s (p50/p99; goal p99 < 1 s).

Baseline, measured in the same run over the same records: a bare aiokafka consumer reading
casefeedback.events and json-decoding each value (the floor of any consumer of the history).
Run: python -m tests.benchmarks.bench_metrics [--quick]   (--quick: 1,000 events and 2 s of paced records,
to prove it runs)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer

from schemas.registry import TOPIC_COMPLIMENTS, TOPIC_EVENTS
from services.common import eventstore, kafka
from services.common.db import create_pool
from services.common.embedded import free_port
from services.common.infra import start_infrastructure
from services.common.relay import Relay
from services.common.settings import Settings, load_settings
from services.intake.worker import IntakeWorker
from services.metrics.worker import MetricsWorker
from tests.helpers import cloudevent, running

N_EVENTS = 20_000
RATE = 500
SECONDS = 10
QUICK_EVENTS, QUICK_SECONDS = 1_000, 2
AREAS = ("community_care", "housing", "general", "criminal_justice")


def _mixed_event(i: int, now: datetime) -> dict[str, Any]:
    when = (now - timedelta(days=i % 400)).isoformat()
    if i % 3 == 0:
        return cloudevent("compliment.received", f"cmp-{i}", when, {"service_area": AREAS[i % 4], "channel": "web",
                                                                    "about": "staff"})
    if i % 3 == 1:
        return cloudevent("survey.response.submitted", f"resp-{i}", when, {
            "survey_id": "bench-survey", "respondent_type": "carer", "answers": {"q1": str(1 + i % 5), "q2": "yes"}})
    return cloudevent("complaint.responded", f"case-{i}", when, {"stage": "stage1", "outcome": "upheld"})


async def _publish_history(settings: Settings, n: int) -> None:
    """Append n events to the history and let one relay publish them to casefeedback.events."""
    pool = await create_pool(settings.require_database())
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        for start in range(0, n, 2000):
            batch = [_mixed_event(i, now) for i in range(start, min(n, start + 2000))]
            async with conn.transaction():
                await eventstore.append(conn, [eventstore.NewEvent(e) for e in batch])
    await pool.close()
    producer = kafka.producer(settings.kafka)
    await producer.start()
    relay, stop = Relay(settings.require_database(), producer), asyncio.Event()
    task = asyncio.ensure_future(relay.run(stop))
    while relay.published_seq < n:
        await asyncio.sleep(0.1)
    stop.set()
    await task
    await producer.stop()


async def _baseline_rate(settings: Settings, n: int) -> float:
    consumer = AIOKafkaConsumer(TOPIC_EVENTS, **settings.kafka.client_kwargs(), group_id=f"bench-{uuid.uuid4().hex}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen, t0 = 0, None
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            t0 = t0 or time.monotonic()
            for records in batches.values():
                for r in records:
                    json.loads(r.value)
                seen += len(records)
        return n / (time.monotonic() - t0)
    finally:
        await consumer.stop()


GROUP = f"casefeedback-metrics-bench-{uuid.uuid4().hex[:8]}"
BenchMetricsWorker = type("BenchMetricsWorker", (MetricsWorker,), {"group": property(lambda self: GROUP)})


async def _metrics_rate(settings: Settings, n: int) -> float:
    """A worker of a new group applies the whole history; the delay run below resumes where it ended."""
    async with running(BenchMetricsWorker, settings) as runtime:
        assert runtime.loop is not None
        t0 = time.monotonic()
        while runtime.loop.records_seen < n:
            await asyncio.sleep(0.01)
        return n / (time.monotonic() - t0)


async def _http_get(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    body = await reader.read()
    writer.close()
    return body.decode()


COMPLIMENTS = re.compile(r'^casefeedback_compliments_total\{service_area="housing"\} ([0-9.e+]+)$', re.M)


async def _delays(settings: Settings, seconds: int) -> list[float]:
    """Send housing compliments at RATE/s for `seconds` to the inbound topic; note when each shows on /metrics."""
    port = free_port()
    async with running(IntakeWorker, settings), running(BenchMetricsWorker, settings, http_port=port):
        base = await _settled(port)
        sent: list[float] = []
        seen: dict[int, float] = {}
        total = RATE * seconds
        sender = asyncio.ensure_future(_send_at_rate(settings, total, sent))
        deadline = time.monotonic() + seconds + 30
        while len(seen) < total and time.monotonic() < deadline:
            count = int(float(COMPLIMENTS.search(await _http_get(port)).group(1)) - base)  # type: ignore[union-attr]
            now = time.monotonic()
            for i in range(len(seen), min(count, total)):
                seen[i] = now
            await asyncio.sleep(0.01)
        await sender
    return [seen[i] - sent[i] for i in range(min(len(sent), len(seen)))]


async def _settled(port: int) -> float:
    """The housing compliments count once it has stopped moving (nothing left to catch up)."""
    last = -1.0
    while True:
        count = float(COMPLIMENTS.search(await _http_get(port)).group(1))  # type: ignore[union-attr]
        if count == last:
            return count
        last = count
        await asyncio.sleep(1.0)


async def _send_at_rate(settings: Settings, total: int, sent: list[float]) -> None:
    producer = kafka.producer(settings.kafka)
    await producer.start()
    t0, tick = time.monotonic(), 0.02
    per_tick = int(RATE * tick)
    try:
        for k in range(0, total, per_tick):
            await asyncio.sleep(max(0.0, t0 + (k / RATE) - time.monotonic()))
            now = datetime.now(UTC).isoformat()
            for _ in range(per_tick):
                e = cloudevent("compliment.received", f"cmp-{uuid.uuid4().hex}", now,
                               {"service_area": "housing", "channel": "web", "about": "service"})
                sent.append(time.monotonic())
                await producer.send(TOPIC_COMPLIMENTS, json.dumps(e).encode(), key=e["subject"].encode())
        await producer.flush()
    finally:
        await producer.stop()


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")  # type: ignore[index]


def main(quick: bool = False) -> dict[str, Any]:
    """Measure and print (at the quick sizes if asked); return the figures."""
    n, seconds = (QUICK_EVENTS, QUICK_SECONDS) if quick else (N_EVENTS, SECONDS)
    # The embedded database without fsync, as the figures in README were measured: they show casefeedback's
    # own cost; `up` and the tests run it crash-safe.
    infra = start_infrastructure(load_settings(), fast_database=True)
    try:
        settings = replace(infra.settings, http_port=0)

        async def measure() -> dict[str, Any]:
            from services.common import db

            await db.migrate(settings.migration_url())  # the schema owner's job; nothing is pending here
            await kafka.ensure_topics(settings.kafka)
            await _publish_history(settings, n)
            baseline = await _baseline_rate(settings, n)
            rate = await _metrics_rate(settings, n)
            delays = await _delays(settings, seconds)
            return {"metrics_events_per_s": round(rate), "baseline_consume_json_events_per_s": round(baseline),
                    "ratio_to_baseline": round(rate / baseline, 3), "delay_events": len(delays),
                    "delay_p50_s": round(_pct(delays, 50), 3), "delay_p99_s": round(_pct(delays, 99), 3)}

        figures = asyncio.run(measure())
    finally:
        infra.stop()
    print(f"metrics apply rate: {figures['metrics_events_per_s']} events/s over {n} history events; "
          f"baseline bare consume+json.loads {figures['baseline_consume_json_events_per_s']} events/s "
          f"(ratio {figures['ratio_to_baseline']})")
    print(f"inbound record -> /metrics at {RATE} events/s for {seconds} s ({figures['delay_events']} records): "
          f"p50 {figures['delay_p50_s']} s, p99 {figures['delay_p99_s']} s (goal p99 < 1 s)")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench_metrics")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, in seconds: prove the benchmark runs")
    main(parser.parse_args().quick)
