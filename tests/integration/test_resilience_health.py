"""A worker that loses its broker or database says so on /health, logs it once, stops quickly and reconnects."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from services.common.embedded import EmbeddedKafka, EmbeddedPostgres, free_port
from services.common.infra import Infrastructure

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples" / "inbound.jsonl"


def _health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


def _wait_health(port: int, accept: object, timeout_s: float) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout_s
    answer = (0, {})
    while time.monotonic() < deadline:
        answer = _health(port)
        if accept(*answer):  # type: ignore[operator]
            return answer
        time.sleep(0.2)
    raise AssertionError(f"/health never answered as wanted within {timeout_s} s; last {answer}")


def _env(home: Path, port: int, kafka: str, database: str) -> dict[str, str]:
    return {**os.environ, "CASEFEEDBACK_HOME": str(home), "KAFKA_BOOTSTRAP_SERVERS": kafka, "DATABASE_URL": database,
            "CASEFEEDBACK_HTTP_PORT": str(port)}


def _start_worker(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "services.cli", "run", service], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), start_new_session=True)  # noqa: SIM115


def _stop_timed(proc: subprocess.Popen[bytes]) -> float:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - t0


@pytest.fixture
def broker() -> Iterator[EmbeddedKafka]:
    kafka = EmbeddedKafka().start()
    yield kafka
    kafka.stop()


@pytest.fixture
def database() -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres().start()
    yield pg
    pg.stop()


def test_a_worker_that_loses_its_broker_says_so_logs_once_and_stops_quickly(
        infra: Infrastructure, broker: EmbeddedKafka, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "intake.log"
    proc = _start_worker("intake", _env(tmp_path, port, broker.bootstrap_servers, infra.settings.require_database()),
                         log)
    try:
        _wait_health(port, lambda code, _: code == 200, 60)
        assert broker.proc is not None
        broker.proc.kill()
        broker.proc.wait()
        lost_at = time.monotonic()
        code, body = _wait_health(port, lambda code, _: code == 503, 15)
        assert "broker" in json.dumps(body), body
        assert time.monotonic() - lost_at < 10
        before = log.stat().st_size
        time.sleep(10)
        assert log.stat().st_size - before < 1500, log.read_text()[-3000:]
        assert proc.poll() is None, "the worker gave up instead of waiting for its broker"
    finally:
        took = _stop_timed(proc)
    assert took < 8, f"stopping took {took:.1f} s with the broker gone"
    assert proc.returncode == 0, log.read_text()[-3000:]


async def test_a_worker_rides_out_a_database_restart_and_records_what_came_meanwhile(
        broker: EmbeddedKafka, database: EmbeddedPostgres, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "intake.log"
    env = _env(tmp_path, port, broker.bootstrap_servers, database.url)
    proc = _start_worker("intake", env, log)
    try:
        _wait_health(port, lambda code, _: code == 200, 60)
        assert database.proc is not None
        os.kill(database.proc.pid, signal.SIGKILL)  # no reaping here: restart() must cope with the zombie
        code, body = _wait_health(port, lambda code, _: code == 503, 15)
        assert "database" in json.dumps(body), body
        emitted = subprocess.run([sys.executable, "-m", "services.cli", "emit", str(EXAMPLES)], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert emitted.returncode == 0, emitted.stderr
        time.sleep(3)
        database.restart()
        _wait_health(port, lambda code, _: code == 200, 30)
        assert proc.poll() is None, "the worker exited instead of reconnecting:\n" + log.read_text()[-3000:]
        ids = {json.loads(line)["id"] for line in EXAMPLES.read_text().splitlines()}
        conn = await asyncpg.connect(database.url)
        try:
            for _ in range(100):
                recorded = {r["id"] for r in await conn.fetch("SELECT id FROM events")}
                if ids <= recorded:
                    break
                await asyncio.sleep(0.2)
        finally:
            await conn.close()
        assert ids <= recorded
    finally:
        took = _stop_timed(proc)
    assert took < 8
    assert proc.returncode == 0, log.read_text()[-3000:]
