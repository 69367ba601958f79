"""Every benchmark under tests/benchmarks/ runs in its quick mode (tiny sizes, seconds each) and prints its
figures beside its baseline, so a benchmark that breaks fails the tests rather than a later `make bench`.

The `bench_*` modules run as `make bench` runs them (through `run_all`); the soak and the fault run through
their own command lines. Each starts its own broker and database (or `casefeedback up`), as it does in full.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "tests" / "benchmarks"
NUMBER = r"[\d.,]+"

# The lines each benchmark must print: its figures, beside the baseline measured in the same run where it has one.
FIGURES: dict[str, list[str]] = {
    "bench_deadlines": [
        rf"deadlines: {NUMBER} open deadline rows",
        rf"tick, nothing due: {NUMBER} ms; baseline indexed SELECT of the due rows {NUMBER} ms .*"
        r"timer index used: True",
        rf"tick, firing: [1-9][\d]* warnings/breaches in {NUMBER} ticks",
        rf"memory: escalation worker with {NUMBER} open deadlines: {NUMBER} MiB RSS",
        rf"restart: spawn to healthy {NUMBER} s .*baseline rebuilding {NUMBER} cases from history in memory {NUMBER} s",
    ],
    "bench_intake": [
        rf"intake throughput: {NUMBER} events/s sustained over {NUMBER} events; baseline bare aiokafka "
        rf"consume->json->produce {NUMBER} events/s .*ratio {NUMBER}",
        rf"end-to-end delay at {NUMBER} events/s .*p99 {NUMBER} ms; baseline p50 {NUMBER} ms, p99 {NUMBER} ms",
        rf"peak resident memory: intake and relay {NUMBER} MiB, baseline {NUMBER} MiB",
    ],
    "bench_metrics": [
        rf"metrics apply rate: {NUMBER} events/s over {NUMBER} history events; baseline bare consume\+json.loads "
        rf"{NUMBER} events/s",
        rf"inbound record -> /metrics at {NUMBER} events/s .*: p50 {NUMBER} s, p99 {NUMBER} s",
    ],
    "bench_replay": [
        rf"^baseline_events_per_s: {NUMBER}$",
        rf"^replay_events_per_s: {NUMBER}$",
        rf"^replay_parallel_events_per_s: {NUMBER}$",
        r"^differences: 0$",
    ],
    "bench_startup": [
        rf"start-up: casefeedback up -> all four services consuming in {NUMBER} s .*baseline bare consumer join "
        rf"{NUMBER} s",
        rf"idle resident memory: relay {NUMBER} MiB",
    ],
    "replay_busy": [
        *(rf'replay {n}: \{{"replay": {n}, "exit": 0, "differences": 0, .*"during_traffic": true' for n in (1, 2, 3)),
        r"replay_busy: 3 replay\(s\) during 300 events/s: exit codes 0, 0, 0; differences 0, 0, 0; every replay "
        r"exited 0",
    ],
    "soak_backdated": [
        r'run 1: \{"events": \d+, .*"replay_exit": 0, .*"lies": 0, "before_the_act_was_recorded": 0\}',
        r"nightly run 1: [1-9]\d* breaches, [1-9]\d* withdrawn by in-time responses sent after the due instant, \d+ "
        r"standing \(late responses\), net breaches met in time 0",
        r"soak: 1 run\(s\): replay exit 0, no breach of a deadline met in time",
    ],
    "fault_db_kill": [
        r"restarting it on the same data directory",
        r"sent (\d+), in history \d+, dead-lettered \d+, lost 0, duplicated 0; replay exited 0",
    ],
}


def _command(name: str) -> list[str]:
    if name.startswith("bench_"):
        return [sys.executable, "-m", "tests.benchmarks.run_all", "--quick", name]
    return [sys.executable, "-m", f"tests.benchmarks.{name}", "--quick"]


def test_every_benchmark_has_a_quick_run_here() -> None:
    modules = {p.stem for p in BENCHMARKS.glob("*.py")} - {"__init__", "run_all"}
    assert modules == set(FIGURES), "each benchmark needs its expected figures in FIGURES"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_the_benchmark_runs_quick_and_prints_its_figures_beside_its_baseline(name: str) -> None:
    res = subprocess.run(_command(name), cwd=ROOT, capture_output=True, text=True, timeout=300)
    shown = f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr (tail):\n{res.stderr[-4000:]}"
    assert res.returncode == 0, shown
    for pattern in FIGURES[name]:
        assert re.search(pattern, res.stdout, re.M), f"no line matching {pattern!r}\n{shown}"
