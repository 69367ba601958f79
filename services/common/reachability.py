"""Whether a process reaches its broker and database: probed every second, told by /health, logged once per change.

A worker whose broker or database is gone keeps running and reconnects when it is back; meanwhile
its `/health` answers 503 with the reason, and its log says so once, not once per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.common import db

log = logging.getLogger(__name__)
PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 3.0
BROKER, DATABASE = "broker", "database"


class RepeatFilter(logging.Filter):
    """Lets each warning (by logger and message template) through once a minute, and only once while an outage lasts.

    So a retry loop, ours or a client library's, logs its problem once rather than once per retry;
    what was seen is forgotten at every change of reachability, so each change is logged afresh.
    """

    def __init__(self, window_s: float = 60.0):
        super().__init__()
        self.window_s = window_s
        self.outage = False
        self._seen: dict[tuple[str, int, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.name == __name__:
            return True
        key, now = (record.name, record.levelno, str(record.msg)), time.monotonic()
        last = self._seen.get(key)
        if last is not None and (self.outage or now - last < self.window_s):
            return False
        self._seen[key] = now
        return True

    def forget(self, outage: bool) -> None:
        """Reachability changed: log each kind of warning once more."""
        self.outage = outage
        self._seen.clear()


REPEATS = RepeatFilter()


class Reachability:
    """What this process cannot reach now (broker, database), from probes and from errors its steps met."""

    def __init__(self, name: str, database_url: str, bootstrap_servers: str, producer: AIOKafkaProducer):
        self._url = database_url
        self._bootstrap = bootstrap_servers
        self._producer = producer
        self._name = name
        self._conn: asyncpg.Connection | None = None
        self.problems: dict[str, str] = {}

    def status(self) -> dict[str, str] | None:
        """For /health: {"status": "broker unreachable", "reason": ...} while something is gone, else None."""
        if not self.problems:
            return None
        gone = " and ".join(sorted(self.problems))
        return {"status": f"{gone} unreachable", "reason": "; ".join(self.problems[k] for k in sorted(self.problems))}

    def note(self, what: str, problem: str | None) -> None:
        """Record that `what` is unreachable (with the problem) or reachable (None); log only a change."""
        before = self.problems.get(what)
        if (before is None) == (problem is None):
            if problem is not None:
                self.problems[what] = problem
            return
        if problem is None:
            del self.problems[what]
            log.warning("%s: %s reachable again", self._name, what)
        else:
            self.problems[what] = problem
            log.warning("%s: %s; waiting for it, /health answers 503", self._name, problem)
        REPEATS.forget(bool(self.problems))

    async def run(self, stop: asyncio.Event) -> None:
        """Probe both every second until `stop`."""
        try:
            while not stop.is_set():
                self.note(BROKER, await self._probe_broker())
                self.note(DATABASE, await self._probe_database())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), PROBE_INTERVAL_S)
        finally:
            if self._conn is not None:
                self._conn.terminate()

    async def _probe_broker(self) -> str | None:
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), PROBE_TIMEOUT_S)
            return None
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            return f"broker unreachable: {self._bootstrap}: {type(exc).__name__}"

    async def _probe_database(self) -> str | None:
        try:
            self._conn = await asyncio.wait_for(db.probe(self._conn, self._url), PROBE_TIMEOUT_S)
            return None
        except Exception as exc:  # whatever the driver raises, the answer is the same: not reachable now
            self._conn = None
            return db.unavailable(exc) or f"database unreachable: {type(exc).__name__}"
