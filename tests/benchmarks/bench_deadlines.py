"""Benchmark: 1,000,000 open deadlines, the tick's cost, the service's memory, and restart time.

A fresh embedded PostgreSQL (and broker) is filled in SQL with 500,000 open stage-2 complaints,
each with an acknowledge and a respond deadline (1,000,000 open deadline rows), due over the next
60 days; 500 of the cases are already past due. Then:
- tick cost: an empty tick (nothing due) and the tick that warns and breaches the due cases,
  beside a baseline measured in the same run: the plain indexed SELECT of the same due rows, and
  the full scan of open deadlines a timer without an index would pay on every tick;
- memory: resident memory of a real escalation worker process (`casefeedback run escalation`)
  holding those 1,000,000 open deadlines (goal < 1 GiB; state lives in PostgreSQL, not in memory);
- restart: spawn to healthy and consuming with 500,000 open cases in the tables (no history is
  re-read: state and positions are in PostgreSQL); baseline: rebuilding 100,000 cases by folding
  their history through the domain in memory, the least a history re-read would cost.
Filling the tables (and rebuilding their timer index after the load) is DDL: it connects as the schema
owner; the tick and the worker run as the services' role, as in production.
Run: python -m tests.benchmarks.bench_deadlines [--cases N] [--quick]   (--quick: 2,000 cases, to prove it runs)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from services.common.infra import Infrastructure, start_infrastructure
from services.common.settings import load_settings
from services.deadlines import engine
from services.deadlines.procedure_files import load_book
from services.escalation import domain
from services.escalation.projection import PROJECTION

GOAL_RSS_MIB = 1024
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sizes:
    """How much to load and measure: the full run, or the quick one that proves the benchmark still works."""

    cases: int = 500_000
    due: int = 500  # cases already past due, fired by the measured ticks
    rebuild: int = 100_000  # cases folded in memory for the restart's baseline
    idle_s: float = 5.0  # the worker ticking over the open deadlines before its memory is read


QUICK = Sizes(cases=2_000, due=50, rebuild=2_000, idle_s=1.0)

POPULATE = """
INSERT INTO escalation_cases (subject, partition, last_seq, open, stage, service_area, state)
SELECT 'bench-' || i, i % $4, 0, true, 'stage2', 'community_care', jsonb_build_object(
  'subject', 'bench-' || i, 'procedure', $1::text, 'service_area', 'community_care', 'stage', 'stage2',
  'visit', 1, 'open', true, 'started', to_char($2::timestamptz, 'YYYY-MM-DD"T"HH24:MI:SS+00:00'), 'outcome', null,
  'deadlines', jsonb_build_array(
    jsonb_build_object('stage', 'stage2', 'kind', 'acknowledge', 'visit', 1, 'status', 'open', 'warned', false,
      'breached', false, 'late', null, 'met_at', null, 'due', to_char(d.ack, 'YYYY-MM-DD"T"HH24:MI:SS+00:00'),
      'warn_at', to_char(d.ack - interval '1 day', 'YYYY-MM-DD"T"HH24:MI:SS+00:00')),
    jsonb_build_object('stage', 'stage2', 'kind', 'respond', 'visit', 1, 'status', 'open', 'warned', false,
      'breached', false, 'late', null, 'met_at', null, 'due', to_char(d.resp, 'YYYY-MM-DD"T"HH24:MI:SS+00:00'),
      'warn_at', to_char(d.resp - interval '1 day', 'YYYY-MM-DD"T"HH24:MI:SS+00:00'))))
FROM generate_series(1, $3) AS i,
LATERAL (SELECT CASE WHEN i <= $5 THEN $2::timestamptz - interval '1 hour'
                     ELSE $2::timestamptz + (i % 60 + 2) * interval '1 day' END AS ack) a,
LATERAL (SELECT a.ack AS ack, a.ack + interval '14 days' AS resp) d
"""

INDEX = """
INSERT INTO deadlines (owner, subject, key, partition, stage, kind, due, status, breached, late, next_fire_at)
SELECT 'escalation', subject, 'stage2:1:' || (dl->>'kind'), partition, 'stage2', dl->>'kind',
       (dl->>'due')::timestamptz, 'open', false, null, (dl->>'warn_at')::timestamptz
FROM escalation_cases, jsonb_array_elements(state->'deadlines') AS dl WHERE subject LIKE 'bench-%'
"""


async def _populate(owner_url: str, cases: int, due: int, partitions: int, now: datetime) -> float:
    """Fill the tables as the schema owner (only it may drop and create the index, and vacuum); seconds taken."""
    key = load_book().current("spso-mchp").key  # type: ignore[union-attr]
    conn = await asyncpg.connect(owner_url)
    try:
        t0 = time.monotonic()
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("DROP INDEX IF EXISTS deadlines_timer")  # built once after the load
        await conn.execute(POPULATE, key, now, cases, partitions, due)
        await conn.execute(INDEX)
        await conn.execute("CREATE INDEX deadlines_timer ON deadlines (owner, next_fire_at) "
                           "WHERE next_fire_at IS NOT NULL")
        await conn.execute("VACUUM ANALYZE deadlines")
        await conn.execute("VACUUM ANALYZE escalation_cases")
        return time.monotonic() - t0
    finally:
        await conn.close()


async def _timed(conn: asyncpg.Connection, sql: str, *args: Any, repeat: int = 20) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        await conn.fetch(sql, *args)
    return (time.perf_counter() - t0) / repeat * 1000


async def _tick_figures(url: str, partitions: int, now: datetime) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    tracker = PROJECTION.tracker(load_book())
    parts = list(range(partitions))
    try:
        select = ("SELECT subject FROM deadlines WHERE owner = 'escalation' AND next_fire_at <= $1 "
                  "AND partition = any($2::int[]) ORDER BY next_fire_at LIMIT 500")
        baseline_ms = await _timed(conn, select, now, parts)
        scan_ms = await _timed(conn, "SELECT count(*) FROM deadlines WHERE owner = 'escalation' AND status = 'open' "
                                     "AND coalesce(next_fire_at, due) <= $1", now, repeat=3)
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + select, now, parts))
        t0 = time.perf_counter()
        for _ in range(20):
            await engine.tick(tracker, conn, parts, now - timedelta(days=2))  # nothing due yet
        empty_ms = (time.perf_counter() - t0) / 20 * 1000
        fired, ticks, t0 = 0, 0, time.perf_counter()
        while (applied := await engine.tick(tracker, conn, parts, now)).cases:
            fired, ticks = fired + len(applied.stored), ticks + 1
        firing_ms = (time.perf_counter() - t0) * 1000
    finally:
        await conn.close()
    return {"baseline_indexed_select_ms": round(baseline_ms, 3), "baseline_full_scan_ms": round(scan_ms, 1),
            "empty_tick_ms": round(empty_ms, 3), "empty_tick_ratio_to_indexed_select": round(empty_ms / baseline_ms, 2),
            "firing_ticks": ticks, "events_fired": fired, "firing_total_ms": round(firing_ms, 1),
            "firing_ms_per_event": round(firing_ms / max(fired, 1), 3),
            "uses_index": "deadlines_timer" in plan}


def _spawn(infra: Infrastructure, port: int) -> subprocess.Popen[bytes]:
    s = infra.settings
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers or "",
           "DATABASE_URL": s.require_database(), "CASEFEEDBACK_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "services.cli", "run", "escalation", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return bool(json.loads(r.read()).get("status") == "ok")
    except OSError:
        return False


def _worker_figures(infra: Infrastructure, idle_s: float) -> dict[str, Any]:
    port = 18000 + os.getpid() % 1000
    t0 = time.monotonic()
    proc = _spawn(infra, port)
    try:
        while not _healthy(port):
            if proc.poll() is not None or time.monotonic() - t0 > 120:
                raise RuntimeError("escalation worker did not become healthy")
            time.sleep(0.05)
        restart_s = time.monotonic() - t0
        time.sleep(idle_s)  # ticking and refreshing gauges over 1,000,000 open deadlines
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.terminate()
        proc.wait(30)
    return {"restart_to_healthy_s": round(restart_s, 2), "worker_rss_mib": round(rss, 1)}


def _rebuild_baseline(n: int) -> float:
    """Seconds to fold n cases' received events through the domain in memory (a history re-read's floor)."""
    book = load_book()
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    t0 = time.perf_counter()
    for i in range(n):
        body = {"id": f"e{i}", "source": "bench", "type": "complaint.received", "subject": f"r-{i}",
                "time": (start + timedelta(minutes=i)).isoformat(),
                "data": {"service_area": "community_care", "channel": "web", "stage": "stage1", "serious": True}}
        domain.decide(None, body, book)
    return time.perf_counter() - t0


async def _table_sizes(url: str) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        size = await conn.fetchval("SELECT pg_total_relation_size('deadlines') + pg_total_relation_size("
                                   "'escalation_cases')")
        count = await conn.fetchval("SELECT count(*) FROM deadlines WHERE status = 'open'")
        return {"open_deadlines": int(count), "table_mib": round(size / 2**20, 1)}
    finally:
        await conn.close()


def main(cases: int | None = None, quick: bool = False) -> dict[str, Any]:
    """Measure and print (`cases` open cases, or the quick sizes); return the figures."""
    sizes = QUICK if quick else Sizes()
    if cases is not None:
        sizes = replace(sizes, cases=cases, due=min(sizes.due, cases))
    # The embedded database without fsync, as the figures in README were measured: they show casefeedback's
    # own cost; `up` and the tests run it crash-safe.
    infra = start_infrastructure(load_settings(), fast_database=True)
    try:
        url, partitions = infra.settings.require_database(), infra.settings.kafka.partitions
        now = datetime.now(UTC)
        load_s = asyncio.run(_populate(infra.settings.migration_url(), sizes.cases, sizes.due, partitions, now))
        tables = asyncio.run(_table_sizes(url))
        tick = asyncio.run(_tick_figures(url, partitions, now))
        worker = _worker_figures(infra, sizes.idle_s)
    finally:
        infra.stop()
    rebuild_s = _rebuild_baseline(sizes.rebuild)
    figures = {"cases": sizes.cases, **tables, "load_s": round(load_s, 1), **tick, **worker,
               "rebuild_cases": sizes.rebuild, "baseline_rebuild_in_memory_s": round(rebuild_s, 2),
               "restart_ratio_to_rebuild": round(worker["restart_to_healthy_s"] / rebuild_s, 2)}
    _print(figures)
    return figures


def _print(f: dict[str, Any]) -> None:
    print(f"deadlines: {f['open_deadlines']:,} open deadline rows ({f['cases']:,} cases, {f['table_mib']} MiB in "
          f"PostgreSQL, loaded in {f['load_s']} s)")
    print(f"tick, nothing due: {f['empty_tick_ms']} ms; baseline indexed SELECT of the due rows "
          f"{f['baseline_indexed_select_ms']} ms (ratio {f['empty_tick_ratio_to_indexed_select']}); a full scan of "
          f"open deadlines would cost {f['baseline_full_scan_ms']} ms per tick; timer index used: {f['uses_index']}")
    print(f"tick, firing: {f['events_fired']} warnings/breaches in {f['firing_ticks']} ticks, "
          f"{f['firing_total_ms']} ms ({f['firing_ms_per_event']} ms per event)")
    print(f"memory: escalation worker with {f['open_deadlines']:,} open deadlines: {f['worker_rss_mib']} MiB RSS "
          f"(goal < {GOAL_RSS_MIB} MiB)")
    print(f"restart: spawn to healthy {f['restart_to_healthy_s']} s with {f['cases']:,} open cases, no history "
          f"re-read; baseline rebuilding {f['rebuild_cases']:,} cases from history in memory "
          f"{f['baseline_rebuild_in_memory_s']} s (ratio {f['restart_ratio_to_rebuild']})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, help="open cases to load (default 500,000; 2,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, in seconds: prove the benchmark runs")
    cli = parser.parse_args()
    main(cli.cases, cli.quick)
