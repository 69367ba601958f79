"""End-to-end fixtures: `casefeedback up` as a user runs it, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
import pytest


@dataclass
class UpProcess:
    """A running `casefeedback up`, its output and the processes it started."""

    proc: subprocess.Popen[str]
    home: Path
    lines: list[str] = field(default_factory=list)
    started_s: float = 0.0

    @property
    def run_info(self) -> dict:
        return json.loads((self.home / "run.json").read_text())

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
        env["CASEFEEDBACK_HOME"] = str(self.home)
        return env

    def cli(self, *args: str, input_: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run another `casefeedback` command beside it, as a user would in a second terminal."""
        return subprocess.run([sys.executable, "-m", "services.cli", *args], env=self.env(), input=input_,
                              capture_output=True, text=True, timeout=timeout)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


def start_up(home: Path, *extra: str, timeout_s: float = 90) -> UpProcess:
    """Start `casefeedback up` and wait until it reports all services consuming."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    env["CASEFEEDBACK_HOME"] = str(home)
    env.setdefault("CASEFEEDBACK_OUT_OF_ORDER_GRACE_S", "5")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up", *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    up = UpProcess(proc, home)
    assert proc.stdout is not None
    deadline = t0 + timeout_s
    for line in proc.stdout:
        up.lines.append(line.rstrip())
        if "services consuming" in line:
            up.started_s = time.monotonic() - t0
            return up
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("casefeedback up did not report its services consuming:\n" + "\n".join(up.lines))


def wait_quiet(up: UpProcess, timeout_s: float = 90) -> None:
    """Wait until nothing was recorded for longer than the deadline tick's grace (so no firing is still due)."""
    quiet_s = float(up.env().get("CASEFEEDBACK_OUT_OF_ORDER_GRACE_S", "5")) + 1.5

    async def head() -> int:
        conn = await asyncpg.connect(up.run_info["database_url"])
        try:
            return int(await conn.fetchval("SELECT seq FROM chain_head"))
        finally:
            await conn.close()

    last, since, deadline = -1, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seq = asyncio.run(head())
        if seq != last:
            last, since = seq, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)
    raise AssertionError(f"the history kept growing for {timeout_s} s")


def replay_when_caught_up(up: UpProcess, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Replay once the history is quiet; while a service is still applying the tail (live state behind), try again."""
    wait_quiet(up)
    deadline = time.monotonic() + timeout_s
    while True:
        replayed = up.cli("replay")
        if replayed.returncode == 0 or time.monotonic() > deadline:
            return replayed
        time.sleep(1)


def stop_up(up: UpProcess, timeout_s: float = 60) -> str:
    """Interrupt it as Ctrl-C would and return the rest of its output."""
    up.proc.send_signal(signal.SIGINT)
    rest, _ = up.proc.communicate(timeout=timeout_s)
    return rest


@pytest.fixture
def up_system(tmp_path: Path) -> Iterator[UpProcess]:
    """A `casefeedback up` for one test; stopped (and checked to leave nothing) afterwards."""
    up = start_up(tmp_path)
    yield up
    if up.proc.poll() is None:
        stop_up(up)
