"""Runs one service worker as a process: wiring, signals, health, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from services.common import db, kafka
from services.common.consumer import ConsumerLoop
from services.common.errors import CasefeedbackError
from services.common.http import HttpEndpoint
from services.common.relay import Relay
from services.common.settings import Settings
from services.common.worker import Worker

log = logging.getLogger(__name__)


def configure_logging(level: str) -> None:
    """One log format for every process; routine logs carry no personal data."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING if level.upper() != "TRACE" else logging.DEBUG)


class Runtime:
    """Holds a running worker's adapters and tasks."""

    def __init__(self, worker_cls: type[Worker], settings: Settings):
        self.worker_cls = worker_cls
        self.settings = settings
        self.started = time.monotonic()
        self.loop: ConsumerLoop | None = None
        self.stopping = False

    def health(self) -> dict[str, Any]:
        """Status for /health: ok once the consumer has joined its group and fetched."""
        loop = self.loop
        consuming = bool(loop and loop.consuming)
        status = "stopping" if self.stopping else ("ok" if consuming else "starting")
        facts: dict[str, Any] = {"service": self.worker_cls.name, "status": status}
        if loop is not None:
            facts["partitions"] = sorted(f"{tp.topic}/{tp.partition}" for tp in loop.assigned)
            facts["records_seen"] = loop.records_seen
        return facts

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, run until `stop`, then shut down in order."""
        s = self.settings
        async with _process_base(s, self.health) as (url, producer, http):
            pool = await db.create_pool(url, max_size=8)
            worker = self.worker_cls(s, pool, producer)
            consumer = kafka.consumer(s.kafka, worker.group, ())
            try:
                await worker.setup()
                # Everything loaded so far (modules, models, clients) lives as long as the process: move it
                # out of the collector's reach, so that collections scan only what batches allocate.
                # Measured on intake: garbage collection fell from about 11 to 2 us of CPU per event.
                gc.freeze()
                self.loop = ConsumerLoop(worker.name, consumer, worker.topics, worker.prepare, s.batch_size,
                                         worker.on_assigned, worker.on_revoked)
                await consumer.start()
                _announce(worker.name, http)
                await self._run_tasks(worker, url, producer, stop)
            finally:
                self.stopping = True
                await consumer.stop()
                await pool.close()

    async def _run_tasks(self, worker: Worker, url: str, producer: Any, stop: asyncio.Event) -> None:
        assert self.loop is not None
        coros = [self.loop.run(stop), *(task(stop) for task in worker.background())]
        if self.settings.relay == "worker":
            coros.append(Relay(url, producer, self.settings.batch_size).run(stop))
        await _run_until_stopped(coros, self.settings, stop)


async def _stop_when_orphaned(parent_pid: int, stop: asyncio.Event) -> None:
    """Stop when the supervising `casefeedback up` has gone, so no worker outlives it."""
    import os

    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("supervisor %d is gone; stopping", parent_pid)
            stop.set()
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _run_until_stopped(coros: list[Awaitable[None]], settings: Settings, stop: asyncio.Event) -> None:
    """Run the tasks until `stop` (or until one fails, which then stops the rest and is raised)."""
    if settings.parent_pid:
        coros.append(_stop_when_orphaned(settings.parent_pid, stop))
    tasks = [asyncio.ensure_future(c) for c in coros]
    done, _ = await asyncio.wait([*tasks, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    failed = [t for t in done if t in tasks and t.exception() is not None]
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if failed:
        error = failed[0].exception()
        assert error is not None
        raise error


@contextlib.asynccontextmanager
async def _process_base(settings: Settings, health: Callable[[], dict[str, Any]]
                        ) -> AsyncIterator[tuple[str, AIOKafkaProducer, HttpEndpoint]]:
    """What every process runs on: the migrated database's URL, the topics, a producer and `/metrics`+`/health`."""
    url = settings.require_database()
    await db.migrate(url)
    await kafka.ensure_topics(settings.kafka)
    producer = kafka.producer(settings.kafka)
    await producer.start()
    http = HttpEndpoint(settings.http_host, settings.http_port, health)
    try:
        await http.start()
        yield url, producer, http
    finally:
        await producer.stop()
        await http.stop()


def _announce(name: str, http: HttpEndpoint) -> None:
    print(f"{name}: metrics {http.base_url}/metrics health {http.base_url}/health", flush=True)


async def run_relay(settings: Settings, stop: asyncio.Event) -> None:
    """The relay on its own (`casefeedback run relay`): leads when it holds the lock, else stands by."""
    relay: Relay | None = None

    def health() -> dict[str, Any]:
        if relay is None:
            return {"service": "relay", "status": "starting"}
        return {"service": "relay", "status": "ok", "published_seq": relay.published_seq}

    async with _process_base(settings, health) as (url, producer, http):
        relay = Relay(url, producer, settings.batch_size)
        _announce("relay", http)
        await _run_until_stopped([relay.run(stop)], settings, stop)


def run_worker(worker_cls: type[Worker], settings: Settings) -> int:
    """Run a worker until SIGINT/SIGTERM; return the process exit code."""
    return run_process(worker_cls.name, Runtime(worker_cls, settings).run, settings)


def run_process(name: str, body: Callable[[asyncio.Event], Awaitable[None]], settings: Settings) -> int:
    """Run `body` until SIGINT/SIGTERM; return the process exit code (2: configuration, 1: unexpected)."""
    configure_logging(settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await body(stop)

    try:
        asyncio.run(main())
    except CasefeedbackError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except Exception:
        log.exception("%s stopped on an unexpected error; restart it to resume from the last commit", name)
        return 1
    return 0
