"""Two metrics workers splitting the partitions, scraped by a real Prometheus: every dashboard query over
the metrics service's figures gives the same answer as one worker holding every partition."""

from __future__ import annotations

import math
import re
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.common.http import HttpEndpoint
from services.common.settings import Settings
from services.metrics.worker import MetricsWorker
from tests.e2e.test_prometheus_config import dashboard_queries
from tests.e2e.test_prometheus_live import Prometheus
from tests.helpers import running, unique, wait_for
from tests.integration.test_metrics_worker import NOW, append, history, own_group

METRICS_SERVICE = re.compile(r"casefeedback_(satisfaction|compliments|complaint_outcomes|complaints_received|"
                             r"label_folded)\w*")


def for_job(expr: str, job: str) -> str:
    """The query restricted to one scrape job (every metric selector gets job="...")."""
    def select(m: re.Match[str]) -> str:
        return f'{m.group(1)}{{job="{job}",' if m.group(2) else f'{m.group(1)}{{job="{job}"}}'
    return re.sub(r"(casefeedback_\w+)(\{)?", select, expr).replace(",}", "}")


def answer(prom: Prometheus, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for r in prom.vector(expr):
        labels = tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("job", "instance")))
        out[labels] = float(r["value"][1])
    return out


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=1e-9) or (math.isnan(a[k]) and
                                                                              math.isnan(b[k])) for k in a)


async def serve(worker: MetricsWorker) -> HttpEndpoint:
    registry = CollectorRegistry(auto_describe=False)  # this worker's figures alone, as its own process serves them
    registry.register(worker.collector)
    endpoint = HttpEndpoint("127.0.0.1", 0, lambda: {"status": "ok"}, registry=registry)
    await endpoint.start()
    return endpoint


async def test_dashboard_queries_over_two_workers_equal_one_worker(settings: Settings, pool: asyncpg.Pool,
                                                                   tmp_path: Path) -> None:
    queries = [(t, e) for _, t, e in dashboard_queries() if METRICS_SERVICE.search(e) and "up{" not in e]
    assert len(queries) >= 10
    split, single = own_group(), own_group()
    await append(pool, history(unique("survey"), n=18))
    async with AsyncExitStack() as stack:
        for cls in (split, split, single):
            await stack.enter_async_context(running(cls, settings))
        workers = {w: type(w) for w in MetricsWorker.live}
        await wait_for(lambda: all(w.owned_partitions() for w in workers), 30)
        for w in workers:
            w.clock = lambda: NOW
        endpoints = {w: await serve(w) for w in workers}
        for endpoint in endpoints.values():
            stack.push_async_callback(endpoint.stop)
        targets = {"split": [e.base_url for w, e in endpoints.items() if workers[w] is split],
                   "single": [e.base_url for w, e in endpoints.items() if workers[w] is single]}
        assert len(targets["split"]) == 2 and len(targets["single"]) == 1
        prom = Prometheus(tmp_path, {}, jobs=targets)
        stack.callback(prom.stop)
        await _until_same(prom, queries)


async def _until_same(prom: Prometheus, queries: list[tuple[str, str]], timeout_s: float = 60) -> None:
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        differ = [(title, answer(prom, for_job(e, "split")), answer(prom, for_job(e, "single")))
                  for title, e in queries]
        differ = [d for d in differ if not same(d[1], d[2]) or not d[2]]
        if not differ:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("two workers differ from one worker:\n" + "\n".join(f"{t}: {a} != {b}" for t, a, b in differ))
        await asyncio.sleep(1)
