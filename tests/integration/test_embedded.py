"""The embedded broker and database never outlive the process that started them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

STARTER = """
import sys, time
from services.common.embedded import EmbeddedKafka, EmbeddedPostgres
kafka = EmbeddedKafka().start()
pg = EmbeddedPostgres().start()
print(kafka.proc.pid, pg.proc.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_broker_and_database_stop_when_their_starter_is_killed_outright() -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    kafka_pid, pg_pid = (int(x) for x in starter.stdout.readline().split())
    assert psutil.pid_exists(kafka_pid) and psutil.pid_exists(pg_pid)
    starter.send_signal(signal.SIGKILL)  # no finaliser runs: only the parent-death signal can stop them
    starter.wait(10)
    assert _gone(kafka_pid, 15), "the broker outlived the process that started it"
    assert _gone(pg_pid, 30), "the database outlived the process that started it"
