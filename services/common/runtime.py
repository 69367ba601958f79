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
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError

from services.common import db, kafka
from services.common.consumer import RETRY_DELAYS_S, ConsumerLoop
from services.common.errors import CasefeedbackError
from services.common.http import HttpEndpoint
from services.common.lag import export_lag
from services.common.reachability import BROKER, DATABASE, REPEATS, Reachability
from services.common.relay import Relay
from services.common.settings import Settings
from services.common.worker import Worker

log = logging.getLogger(__name__)
# A client stopping with its server gone waits this long at most (its own time-outs run to 40 s).
CLIENT_STOP_S = 3.0
# After SIGTERM, what has not finished this long after is cancelled, so a stop takes seconds whatever is gone.
STOP_GRACE_S = 8.0
RELAY_JOB = "relay"  # the relay's database role (services/common/settings.py JOBS)
BROKER_OUTAGES = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)


def configure_logging(level: str) -> None:
    """One log format for every process; routine logs carry no personal data."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(REPEATS)  # a retry loop, ours or a client's, logs its problem once
    logging.getLogger("aiokafka").setLevel(logging.WARNING if level.upper() != "TRACE" else logging.DEBUG)


class Runtime:
    """Holds a running worker's adapters and tasks."""

    def __init__(self, worker_cls: type[Worker], settings: Settings):
        self.worker_cls = worker_cls
        self.settings = settings
        self.started = time.monotonic()
        self.loop: ConsumerLoop | None = None
        self.reach: Reachability | None = None
        self.stopping = False

    def health(self) -> dict[str, Any]:
        """Status for /health: ok once the consumer has joined its group and fetched, and while both servers answer."""
        loop = self.loop
        consuming = bool(loop and loop.consuming)
        status = "stopping" if self.stopping else ("ok" if consuming else "starting")
        facts: dict[str, Any] = {"service": self.worker_cls.name, "status": status}
        if loop is not None:
            facts["partitions"] = sorted(f"{tp.topic}/{tp.partition}" for tp in loop.assigned)
            facts["records_seen"] = loop.records_seen
        if not self.stopping:
            facts.update(_outage(self.reach, loop.waiting_for if loop else None))
        return facts

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, run until `stop`, then shut down in order."""
        s = self.settings
        async with _process_base(s, self.health, self.worker_cls.name) as (url, producer, http, reach):
            self.reach = reach
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
                                         worker.on_assigned, worker.on_revoked, unavailable=db.unavailable)
                await consumer.start()
                _announce(worker.name, http)
                await self._run_tasks(worker, url, producer, stop)
            finally:
                self.stopping = True
                await _bounded(consumer.stop(), "consumer")
                await db.close_pool(pool)

    async def _run_tasks(self, worker: Worker, url: str, producer: Any, stop: asyncio.Event) -> None:
        assert self.loop is not None and self.reach is not None
        reach = self.reach
        loop = self.loop
        coros: list[Awaitable[None]] = [loop.run(stop), reach.run(stop),
                                        *(_patient(task, reach, stop) for task in worker.background()),
                                        export_lag(worker.name, loop.consumer, tuple(worker.topics),
                                                   lambda: loop.assigned, stop)]
        if self.settings.relay == "worker":  # the standby relay connects as the relay, not as this worker
            relay = Relay(self.settings.database_url_for(RELAY_JOB), producer, self.settings.batch_size)
            coros += [_relay_until_stopped(relay, reach, stop), _patient(relay.watch_backlog, reach, stop)]
        await _run_until_stopped(coros, self.settings, stop)


def _outage(reach: Reachability | None, waiting_for: str | None) -> dict[str, str]:
    """The status and reason /health gives while the broker or database is gone, else nothing."""
    status = reach.status() if reach is not None else None
    if status is None and waiting_for is not None:
        status = {"status": f"{waiting_for.split(':')[0]}", "reason": waiting_for}
    return status or {}


async def _bounded(stopping: Awaitable[None], what: str, timeout_s: float = CLIENT_STOP_S) -> None:
    """Wait for a client to stop, but not longer than `timeout_s` (with its server gone it waits out its time-outs)."""
    try:
        await asyncio.wait_for(stopping, timeout_s)
    except asyncio.TimeoutError:
        log.warning("the %s did not stop within %.0f s (its server is gone?); left behind", what, timeout_s)
    except (Exception, asyncio.CancelledError) as exc:  # stopping anyway: what the client meets on its way out
        task = asyncio.current_task()
        if isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling():
            raise  # we are being cancelled, not the client's own tasks
        log.warning("the %s stopped with %s", what, type(exc).__name__)


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
async def _process_base(settings: Settings, health: Callable[[], dict[str, Any]], name: str
                        ) -> AsyncIterator[tuple[str, AIOKafkaProducer, HttpEndpoint, Reachability]]:
    """What every process runs on: the migrated database's URL (as the role of job `name`), the topics, a
    producer, `/metrics`+`/health`, and the probes that tell whether the broker and database are there."""
    url = settings.database_url_for(name)
    if settings.relay == "worker" and name != RELAY_JOB:
        settings.database_url_for(RELAY_JOB)  # a worker's standby relay needs the relay's URL: say so at start-up
    await db.migrate(settings.migration_database_url or url)  # the owner's URL when given; a job's role only checks
    await kafka.ensure_topics(settings.kafka)
    producer = kafka.producer(settings.kafka)
    await producer.start()
    http = HttpEndpoint(settings.http_host, settings.http_port, health)
    try:
        await http.start()
        yield url, producer, http, Reachability(name, url, settings.kafka.bootstrap_servers or "", producer)
    finally:
        await _bounded(producer.stop(), "producer")
        await http.stop()


def _announce(name: str, http: HttpEndpoint) -> None:
    print(f"{name}: metrics {http.base_url}/metrics health {http.base_url}/health", flush=True)


async def run_relay(settings: Settings, stop: asyncio.Event) -> None:
    """The relay on its own (`casefeedback run relay`): leads when it holds the lock, else stands by."""
    relay: Relay | None = None
    reach: Reachability | None = None  # set below, once the process base is up

    def health() -> dict[str, Any]:
        if relay is None:
            return {"service": "relay", "status": "starting"}
        return {"service": "relay", "status": "ok", "published_seq": relay.published_seq, **_outage(reach, None)}

    async with _process_base(settings, health, "relay") as (url, producer, http, probes):
        relay, reach = Relay(url, producer, settings.batch_size), probes
        _announce("relay", http)
        tasks: list[Awaitable[None]] = [_relay_until_stopped(relay, probes, stop),
                                        _patient(relay.watch_backlog, probes, stop), probes.run(stop)]
        await _run_until_stopped(tasks, settings, stop)


async def _relay_until_stopped(relay: Relay, reach: Reachability, stop: asyncio.Event) -> None:
    """Run the relay; when its database or broker goes, wait for it and lead (or stand by) again.

    Its position is stored only after the broker acknowledged, so starting over republishes at most a tail.
    """
    await _patient(relay.run, reach, stop)


async def _patient(task: Callable[[asyncio.Event], Awaitable[None]], reach: Reachability, stop: asyncio.Event) -> None:
    """Run `task` until `stop`; when it fails because the database or broker is gone, wait and run it again.

    Any other failure is raised (and stops the process). A task run again starts from what is stored.
    """
    delay, longest = RETRY_DELAYS_S
    while not stop.is_set():
        try:
            await task(stop)
            return
        except Exception as exc:
            outage = _outage_of(exc)
            if outage is None:
                raise
            reach.note(DATABASE if outage.startswith("database") else BROKER, outage)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(2 * delay, longest)


def _outage_of(exc: BaseException) -> str | None:
    """What is unreachable when `exc` means the database or broker is gone for now; None for a real failure."""
    if isinstance(exc, BROKER_OUTAGES):
        return f"broker unreachable: {type(exc).__name__}"
    return db.unavailable(exc)


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
        # Watched from the very start: a worker still waiting for its database must not outlive `up` either.
        parent = settings.parent_pid
        orphaned = asyncio.ensure_future(_stop_when_orphaned(parent, stop)) if parent else None
        try:
            await _until_stopped(asyncio.ensure_future(body(stop)), stop)
        finally:
            if orphaned is not None:
                orphaned.cancel()

    try:
        asyncio.run(main())
    except CasefeedbackError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        outage = _outage_of(exc)
        if outage is None:
            log.exception("%s stopped on an unexpected error; restart it to resume from the last commit", name)
            return 1
        print(f"{name}: {outage}; restart it to resume from the last commit", file=sys.stderr)
        return 2
    return 0


async def _until_stopped(body: asyncio.Future[None], stop: asyncio.Event) -> None:
    """Await `body`; once `stop` is set, give it STOP_GRACE_S to finish, then cancel it (start-up may be waiting)."""
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([body, stopping], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
    stopping.cancel()
    if not body.done():
        done, _ = await asyncio.wait([body], timeout=STOP_GRACE_S)
        if not done:
            log.warning("not stopped %.0f s after the signal; cancelling what was left", STOP_GRACE_S)
            body.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await body
            return
    body.result()

