"""Benchmark: `casefeedback up` to all four services consuming, and each service's idle memory.

Baseline, measured in the same run on a broker of the same kind: one bare aiokafka consumer
starting and joining a group (the floor any Kafka service pays before it can consume).
Run: python -m tests.benchmarks.bench_startup [--quick]   (--quick: memory read after 1 s idle rather than 5)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import psutil

from services.common import kafka
from services.common.infra import start_infrastructure
from services.common.settings import load_settings


def _baseline_join_s() -> float:
    infra = start_infrastructure(load_settings())
    try:
        async def join() -> float:
            t0 = time.monotonic()
            consumer = kafka.consumer(infra.settings.kafka, "bench-baseline", ["casefeedback.events"])
            await consumer.start()
            await consumer.getmany(timeout_ms=100)
            elapsed = time.monotonic() - t0
            await consumer.stop()
            return elapsed

        return asyncio.run(join())
    finally:
        infra.stop()


def _measure_up(idle_s: float) -> tuple[float, dict[str, float]]:
    home = tempfile.mkdtemp(prefix="casefeedback-bench-")
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    env["CASEFEEDBACK_HOME"] = home
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    started = None
    for line in proc.stdout:
        match = re.search(r"services consuming ([\d.]+) s", line)
        if match:
            started = time.monotonic() - t0
            break
    time.sleep(idle_s)
    rss = {}
    for child in psutil.Process(proc.pid).children(recursive=True):
        cmd = child.cmdline()
        if "run" in cmd:
            rss[cmd[-1]] = child.memory_info().rss / 2**20
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert started is not None, "casefeedback up never reported its services consuming"
    return started, rss


def main(quick: bool = False) -> dict[str, Any]:
    """Measure and print (the quick run idles less before reading memory); return the figures."""
    baseline = _baseline_join_s()
    started, rss = _measure_up(1.0 if quick else 5.0)
    figures = {"up_to_all_consuming_s": round(started, 2), "baseline_one_consumer_join_s": round(baseline, 2),
               "ratio_to_baseline": round(started / baseline, 2),
               "idle_rss_mib": {k: round(v, 1) for k, v in sorted(rss.items())}}
    print(f"start-up: casefeedback up -> all four services consuming in {started:.2f} s "
          f"(goal < 10 s); baseline bare consumer join {baseline:.2f} s; ratio {started / baseline:.2f}")
    for name, mib in sorted(rss.items()):
        print(f"idle resident memory: {name} {mib:.1f} MiB")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench_startup")
    parser.add_argument("--quick", action="store_true", help="idle 1 s before reading memory: prove the benchmark runs")
    main(parser.parse_args().quick)
