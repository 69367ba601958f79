"""Benchmark: intake's sustained throughput and end-to-end delay, beside a bare aiokafka baseline.

Baseline, measured in the same run on the same broker: a bare aiokafka loop (its own process) that
consumes the same inbound records, parses the JSON and produces each to another topic, committing
offsets per batch. Intake runs as `casefeedback up` and deploy/ run it: `casefeedback run intake`
(validation, de-duplication, one PostgreSQL transaction per batch) beside `casefeedback run relay`
(publishing the history to `casefeedback.events`); peak memory is the two processes' together.

Both are measured the same way from this process: a reader timestamps each record's arrival on the
output topic; sustained throughput is the 10th-90th percentile arrival span; delay is the inbound
record's timestamp to its arrival, measured on a second, paced stream while the worker keeps up.
Run: python -m tests.benchmarks.bench_intake [--quick] (BENCH_INTAKE_EVENTS=50000 by default; --quick: 1,000
events and paced streams of 200, to prove it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from schemas.registry import INBOUND_TOPICS, TOPIC_EVENTS, inbound_topic
from services.common import kafka
from services.common.infra import start_infrastructure
from services.common.settings import KafkaSettings, Settings, load_settings

BASELINE_TOPIC = "bench.baseline.out"
T = "2026-03-02T09:15:00+00:00"


def make_events(n: int, run: str) -> list[dict[str, Any]]:
    """A realistic mix: compliments, and complaints received then acknowledged."""
    out: list[dict[str, Any]] = []
    i = 0
    while len(out) < n:
        i += 1
        subject = f"{run}-{i}"
        if i % 3 == 0:
            out.append(_event("compliment.received", subject, {"service_area": "housing", "channel": "web",
                                                               "about": "staff"}))
            continue
        out.append(_event("complaint.received", subject, {"service_area": "community_care", "channel": "phone",
                                                          "stage": "stage1", "serious": False,
                                                          "themes": ["communication"]}))
        out.append(_event("complaint.acknowledged", subject, {"stage": "stage1"}))
    return out[:n]


def _event(type_: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "bench/crm", "type": type_, "subject": subject,
            "time": T, "datacontenttype": "application/json", "data": data}


async def produce(settings: KafkaSettings, events: list[dict[str, Any]], rate: float | None = None) -> list[float]:
    """Send events to their inbound topics (as fast as possible, or paced at `rate` per second); their timestamps."""
    producer = AIOKafkaProducer(**settings.client_kwargs(), linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        t0, futures = time.monotonic(), []
        for i, e in enumerate(events):
            futures.append(await producer.send(inbound_topic(e["type"]), json.dumps(e).encode(),
                                               key=e["subject"].encode()))
            if rate and i % 50 == 0:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        return [m.timestamp / 1000 for m in await asyncio.gather(*futures)]
    finally:
        await producer.stop()


@dataclass
class Arrivals:
    """When each wanted event id arrived on an output topic, and the inbound record's timestamp."""

    wanted: dict[str, float]  # id -> inbound record timestamp (s), or 0 if unknown
    at: dict[str, float] = field(default_factory=dict)  # id -> arrival wall time (s)

    def complete(self) -> bool:
        return len(self.at) >= len(self.wanted)


async def read_arrivals(settings: KafkaSettings, topic: str, arrivals: Arrivals, stop: asyncio.Event,
                        ready: asyncio.Event | None = None) -> None:
    """Record the first arrival of each wanted id on `topic` (from its end if `ready` is given) until complete."""
    consumer = AIOKafkaConsumer(**settings.client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=20)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
        consumer.assign(partitions)
        if ready is None:
            await consumer.seek_to_beginning()
        else:
            await consumer.seek_to_end()
            for tp in partitions:
                await consumer.position(tp)
            ready.set()
        while not stop.is_set() and not arrivals.complete():
            for batch in (await consumer.getmany(timeout_ms=100, max_records=10000)).values():
                now = time.time()
                for record in batch:
                    event_id = json.loads(record.value)["id"]
                    if event_id in arrivals.wanted and event_id not in arrivals.at:
                        arrivals.at[event_id] = now
    finally:
        await consumer.stop()


def sustained_rate(times: list[float]) -> float:
    """Events per second over the 10th to 90th percentile of arrival times."""
    times = sorted(times)
    lo, hi = times[len(times) // 10], times[(len(times) * 9) // 10]
    return (len(times) * 0.8) / max(hi - lo, 1e-6)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Sampler:
    """Polls the peak resident memory of processes and their children, together."""

    def __init__(self, pids: list[int]):
        self.processes = [psutil.Process(pid) for pid in pids]
        self.peak = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                procs = [q for p in self.processes for q in (p, *p.children(recursive=True))]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            await asyncio.sleep(0.1)


async def measure(settings: Settings, cmds: list[list[str]], topic: str, backlog: list[dict[str, Any]],
                  paced: list[dict[str, Any]], rate: float) -> dict[str, float]:
    """Start `cmds`, measure throughput over the backlog and delay over the paced stream, then stop them."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": str(settings.kafka.bootstrap_servers),
           "DATABASE_URL": settings.require_database(), "CASEFEEDBACK_HTTP_PORT": "0",
           "CASEFEEDBACK_LOG_LEVEL": "WARNING", "CASEFEEDBACK_RELAY": "separate"}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL) for cmd in cmds]
    stop, sampler = asyncio.Event(), Sampler([p.pid for p in procs])
    tasks = [asyncio.ensure_future(sampler.run(stop))]
    try:
        backlog_arrivals = Arrivals({e["id"]: 0.0 for e in backlog})
        tasks.append(asyncio.ensure_future(read_arrivals(settings.kafka, topic, backlog_arrivals, stop)))
        await _until(backlog_arrivals.complete, 600, procs)
        paced_arrivals, ready = Arrivals({e["id"]: 0.0 for e in paced}), asyncio.Event()
        tasks.append(asyncio.ensure_future(read_arrivals(settings.kafka, topic, paced_arrivals, stop, ready)))
        await ready.wait()
        sent_at = await produce(settings.kafka, paced, rate)
        await _until(paced_arrivals.complete, 300, procs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
        stop.set()
        await asyncio.gather(*tasks)
    return _figures(backlog_arrivals, paced_arrivals, paced, sent_at, sampler.peak)


def _figures(backlog: Arrivals, paced: Arrivals, events: list[dict[str, Any]], sent_at: list[float],
             peak: int) -> dict[str, float]:
    delays = [paced.at[e["id"]] - sent for e, sent in zip(events, sent_at, strict=True)]
    return {"events_per_s": round(sustained_rate(list(backlog.at.values()))),
            "p50_delay_ms": round(1000 * percentile(delays, 0.5), 1),
            "p99_delay_ms": round(1000 * percentile(delays, 0.99), 1), "peak_rss_mib": round(peak / 2**20, 1)}


async def _until(check: Any, timeout_s: float, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not complete within {timeout_s} s")
        await asyncio.sleep(0.1)


# --- the baseline: a bare aiokafka consume -> json.loads -> produce loop, in its own process ----------------------


async def baseline_loop(kafka_settings: KafkaSettings, out_topic: str) -> None:
    """Consume the inbound topics, parse each value, produce it to the baseline topic; commit per batch."""
    consumer = kafka.consumer(kafka_settings, f"bench-baseline-{uuid.uuid4().hex[:8]}", INBOUND_TOPICS)
    producer = kafka.producer(kafka_settings)
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            futures = []
            for records in batches.values():
                for r in records:
                    body = json.loads(r.value)
                    futures.append(await producer.send(out_topic, json.dumps(body).encode(), key=r.key))
            await asyncio.gather(*futures)
            if batches:
                await consumer.commit({tp: OffsetAndMetadata(rs[-1].offset + 1, "") for tp, rs in batches.items()})
    finally:
        await consumer.stop()
        await producer.stop()


def main(quick: bool = False) -> dict[str, Any]:
    """Measure baseline and intake on one embedded broker and database; print and return the figures."""
    n = 1000 if quick else int(os.environ.get("BENCH_INTAKE_EVENTS", "50000"))
    paced = 200 if quick else 2000
    # The embedded database without fsync, as the figures in README were measured: they show casefeedback's
    # own cost; `up` and the tests run it crash-safe.
    infra = start_infrastructure(load_settings(), fast_database=True)
    try:
        return asyncio.run(_main(infra.settings, n, paced))
    finally:
        infra.stop()


async def _main(settings: Settings, n: int, paced_n: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    backlog = make_events(n, f"b{run}")
    paced = [make_events(paced_n, f"p{i}{run}") for i in range(3)]
    rate = 500.0
    await produce(settings.kafka, backlog)
    py = sys.executable
    intake_cmds = [[py, "-m", "services.cli", "run", "intake"], [py, "-m", "services.cli", "run", "relay"]]
    # The load on a shared machine drifts: measure the baseline before and after intake and use the mean.
    before = await _baseline(settings, backlog, paced[0], rate, f"{BASELINE_TOPIC}.1")
    intake = await measure(settings, intake_cmds, TOPIC_EVENTS, backlog, paced[1], rate)
    after = await _baseline(settings, backlog, paced[2], rate, f"{BASELINE_TOPIC}.2")
    base = {k: round((before[k] + after[k]) / 2, 1) for k in before}
    ratio = intake["events_per_s"] / base["events_per_s"]
    figures = {"events": n, "baseline": base, "baseline_runs": [before, after], "intake": intake,
               "ratio": round(ratio, 3)}
    _print(figures, rate)
    return figures


async def _baseline(settings: Settings, backlog: list[dict[str, Any]], paced: list[dict[str, Any]], rate: float,
                    topic: str) -> dict[str, float]:
    await kafka.ensure_topics(settings.kafka, [topic])
    cmd = [sys.executable, "-m", "tests.benchmarks.bench_intake", "baseline", topic]
    return await measure(settings, [cmd], topic, backlog, paced, rate)


def _print(f: dict[str, Any], rate: float) -> None:
    b, i = f["baseline"], f["intake"]
    runs = " and ".join(str(r["events_per_s"]) for r in f["baseline_runs"])
    print(f"intake throughput: {i['events_per_s']} events/s sustained over {f['events']} events; "
          f"baseline bare aiokafka consume->json->produce {b['events_per_s']} events/s (mean of {runs}, "
          f"measured before and after intake); ratio {f['ratio']:.2f} (goal >= 0.5)")
    print(f"end-to-end delay at {rate:g} events/s (inbound record to arrival on casefeedback.events): "
          f"p50 {i['p50_delay_ms']} ms, p99 {i['p99_delay_ms']} ms; baseline p50 {b['p50_delay_ms']} ms, "
          f"p99 {b['p99_delay_ms']} ms")
    print(f"peak resident memory: intake and relay {i['peak_rss_mib']} MiB, baseline {b['peak_rss_mib']} MiB")


if __name__ == "__main__":
    if sys.argv[1:2] == ["baseline"]:
        asyncio.run(baseline_loop(load_settings().kafka, sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(prog="bench_intake")
        parser.add_argument("--quick", action="store_true", help="tiny sizes, in seconds: prove the benchmark runs")
        main(parser.parse_args().quick)
