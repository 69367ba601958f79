"""Scrapes run off the event loop: /health answers while a large exposition is generated, and the
live figures can be read from a scrape thread while the loop keeps changing them."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest

from services.common.http import HttpEndpoint
from services.metrics import domain as d
from services.metrics.collector import MetricsCollector
from services.metrics.figures import LiveFigures
from tests.unit import metrics_support as support
from tests.unit.test_metrics_caps import answered, defined

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
TODAY = d.today_of(NOW)


def get(port: int, path: str) -> tuple[bytes, float]:
    """The body of GET `path` and how long it took (blocking: call it from another thread than the server's)."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        body = response.read()
    return body, time.perf_counter() - started


def scrape_and_ask_health(port: int) -> tuple[tuple[bytes, float], tuple[bytes, float]]:
    """Start a scrape, ask /health while it runs; both answers and their durations."""
    with ThreadPoolExecutor(1) as pool:
        scrape = pool.submit(get, port, "/metrics")
        time.sleep(0.2)  # the scrape is under way
        health = get(port, "/health")
        return scrape.result(), health


async def test_health_answers_while_a_large_scrape_is_generated() -> None:
    surveys = defined(50, 50)
    unbounded = replace(support.SETS, max_series=10**9, max_questions=10**9)  # the 15 MB exposition
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(support.Snapshot({0: answered(surveys)}, surveys, unbounded), lambda: NOW))
    endpoint = HttpEndpoint("127.0.0.1", 0, lambda: {"status": "ok"}, registry=registry)
    await endpoint.start()
    try:
        (body, scrape_took), (health, took) = await asyncio.to_thread(scrape_and_ask_health, endpoint.port)
    finally:
        await endpoint.stop()
    assert b'"ok"' in health
    assert scrape_took > took, "the scrape was still running when /health answered"
    assert took < 0.5, f"/health took {took:.2f} s behind a scrape of {len(body):,} bytes"


def test_a_scrape_thread_reads_consistent_figures_while_the_loop_changes_them() -> None:
    figures = LiveFigures(support.SETS)
    figures.keep_surveys(defined(3, 4).values())
    figures.load({0: {}, 1: {}})
    collector = MetricsCollector(figures, lambda: NOW)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    errors: list[BaseException] = []
    done = threading.Event()

    def scrape_forever() -> None:
        while not done.is_set():
            try:
                generate_latest(registry)
            except BaseException as exc:  # noqa: BLE001 - any failure in the thread fails the test
                errors.append(exc)
                return

    thread = threading.Thread(target=scrape_forever)
    thread.start()
    try:
        for i in range(3000):
            delta = {(d.ANSWER, (f"survey-{i % 3}", f"q{i % 4}", "carer", str(i % 6))): {TODAY - i % 400: 1},
                     (d.COMPLIMENT, (f"area-{i % 50}",)): {TODAY - i % 30: 1}}
            figures.adopt({i % 2: delta}, [d.Survey(f"late-{i % 7}", 0, 100 + i)])
            if i % 500 == 0:
                figures.drop([1])
                figures.load({1: {}})
    finally:
        done.set()
        thread.join()
    assert not errors, errors
    view = figures.view()
    assert view.buckets == d.merge(figures.partitions.values())
    assert sum(sum(days.values()) for days in view.buckets.values()) > 0
