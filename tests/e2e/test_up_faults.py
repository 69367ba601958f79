"""`casefeedback up` rides out the death of its embedded database or broker, and nothing outlives it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import psutil

from tests.benchmarks.fault_db_kill import history_ids, postmaster, run_fault
from tests.e2e.conftest import UpProcess, replay_when_caught_up, start_up, stop_up

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples" / "inbound.jsonl"


def _wait_line(up: UpProcess, text: str, timeout_s: float) -> str:
    assert up.proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = up.proc.stdout.readline()
        up.lines.append(line.rstrip())
        if text in line:
            return line
    raise AssertionError(f"`up` never printed {text!r}:\n" + "\n".join(up.lines))


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def test_a_killed_database_mid_stream_is_restarted_and_every_event_ends_recorded_exactly_once(tmp_path: Path) -> None:
    figures = run_fault(tmp_path, count=3000, rate=600)
    assert "restarting it on the same data directory" in figures.up_output, figures.up_output
    assert figures.lost == 0 and figures.duplicated == 0, figures.line()
    assert figures.in_history + figures.deadlettered == figures.sent, figures.line()
    assert figures.replay_exit == 0, figures.line()


def test_a_killed_broker_is_recreated_said_so_and_the_system_goes_on(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    try:
        broker = next(p for p in psutil.Process(up.proc.pid).children() if "--storage-engine" in p.cmdline())
        os.kill(broker.pid, signal.SIGKILL)
        line = _wait_line(up, "broker: embedded Tansu exited", 30)
        assert "lost" in line
        deadline = time.monotonic() + 60
        while True:
            emitted = up.cli("emit", str(EXAMPLES))
            if emitted.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert emitted.returncode == 0, emitted.stderr
        ids = [json.loads(line)["id"] for line in EXAMPLES.read_text().splitlines()]
        deadline = time.monotonic() + 60
        while len(recorded := asyncio.run(history_ids(up.run_info["database_url"], ids))) < len(ids):
            assert time.monotonic() < deadline, f"only {len(recorded)} of {len(ids)} recorded after the new broker"
            time.sleep(1)
        replayed = replay_when_caught_up(up, 90)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    finally:
        rest = stop_up(up)
    assert up.proc.returncode == 0, rest


def test_no_worker_outlives_up_killed_while_its_database_is_gone(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    workers = [p for p in up.descendants() if "services.cli" in " ".join(p.cmdline())]
    assert len(workers) == 5
    pg = postmaster(up)
    up.proc.send_signal(signal.SIGSTOP)  # `up` cannot restart the database: it stays gone
    os.kill(pg.pid, signal.SIGKILL)
    time.sleep(3)  # the workers now wait for their database
    up.proc.send_signal(signal.SIGKILL)
    up.proc.wait(10)
    deadline = time.monotonic() + 15
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(workers)
    assert left == [], f"outlived up: {[p.cmdline() for p in left]}"
