"""The one consumer loop: fetch a batch, let the service make its effect durable, then commit offsets.

Two stages overlap: while batch N is being applied (database and broker round trips), batch N+1 is
fetched and prepared (the service's pure CPU work on it, e.g. intake's validation). Applying stays
strictly in order, one batch at a time, and offsets are committed only after a batch is applied.
While the database (or broker) an apply needs is unreachable, the batch waits and is retried: its
offsets are not committed meanwhile, so nothing is skipped and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from services.common.metrics import EVENT_DELAY
from services.common.relay import recorded_at_of

log = logging.getLogger(__name__)

Record = ConsumerRecord  # re-exported so services need not import aiokafka
# Under a backlog (a fetch of at least LINGER_THRESHOLD records), keep gathering for up to LINGER_S.
LINGER_THRESHOLD = 50
LINGER_S = 0.05
Apply = Callable[[], Awaitable[None]]
# Prepares a batch (work that needs nothing from earlier batches' effects) and returns the step that applies it.
BatchPreparer = Callable[[Sequence[ConsumerRecord]], Awaitable[Apply]]
PartitionsHook = Callable[[set[TopicPartition]], Awaitable[None]]
# Says what is unreachable when an error means the infrastructure is gone for now (else None: a real failure).
Unavailable = Callable[[BaseException], "str | None"]
# First and longest wait between retries while the infrastructure is unreachable.
RETRY_DELAYS_S = (0.5, 5.0)


class _Stopped(Exception):
    """Stopping while a step waited for the infrastructure: the step is left undone, nothing committed."""


async def _nothing(_: set[TopicPartition]) -> None:
    return None


def _never(_: BaseException) -> str | None:
    return None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumerLoop):
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._loop.revoking(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._loop.assigned = set(self._loop.consumer.assignment())
        with contextlib.suppress(_Stopped):  # stopping: the partitions' next owner loads their state
            await self._loop.retrying(functools.partial(self._loop.on_assigned, set(assigned)))


class ConsumerLoop:
    """Prepares and applies each fetched batch and commits the batch's offsets only after it is applied.

    The apply step must have made the batch's effect durable (database commit, broker ack) before
    returning; if it raises, nothing is committed and the loop stops so that the process restarts
    from the last committed offsets rather than skipping records. A batch prepared before a
    rebalance is dropped unapplied (its partitions' new owner reads it again); the batch being
    applied when partitions are revoked finishes and commits first. An error that `unavailable` names
    an outage (database gone) does not stop the loop: the batch waits, with backoff, and is retried
    after its partitions' state is reloaded; `waiting_for` says what it waits for meanwhile.
    """

    def __init__(self, service: str, consumer: AIOKafkaConsumer, topics: Sequence[str], prepare: BatchPreparer,
                 max_records: int = 2000, on_assigned: PartitionsHook = _nothing,
                 on_revoked: PartitionsHook = _nothing, unavailable: Unavailable = _never,
                 retry_delays: tuple[float, float] = RETRY_DELAYS_S):
        self.service = service
        self.consumer = consumer
        self.topics = list(topics)
        self.prepare = prepare
        self.max_records = max_records
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.unavailable = unavailable
        self.retry_delays = retry_delays
        self.waiting_for: str | None = None
        self._stop = asyncio.Event()
        self.assigned: set[TopicPartition] = set()
        self.consuming = False
        self.records_seen = 0
        self.generation = 0  # bumped on every revocation: batches fetched before it are not applied
        self._applying: asyncio.Future[None] | None = None
        self._failure: Exception | None = None
        # Subscribe before the consumer starts: subscribing after start would join the group twice.
        self.consumer.subscribe(self.topics, listener=_Listener(self))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch being applied is finished and committed first."""
        self._stop = stop
        try:
            while not stop.is_set():
                generation = self.generation
                batches = await self._fetch()
                self.consuming = True
                await self._settled(wait=False)
                records = [r for tp in sorted(batches, key=lambda t: (t.topic, t.partition)) for r in batches[tp]]
                if not records:
                    continue
                apply = await self.prepare(records)
                await self._settled(wait=True)
                if generation == self.generation:
                    self._applying = asyncio.ensure_future(self._process(apply, records, batches))
        finally:
            await self._settled(wait=True)

    async def _settled(self, wait: bool) -> None:
        """Wait for (or only look at) the batch being applied; its failure stops the loop.

        A failure is kept, so that one seen first by a revocation (inside the rebalance listener)
        still stops the loop.
        """
        if self._failure is not None:
            raise self._failure
        applying = self._applying
        if applying is None or not (wait or applying.done()):
            return
        self._applying = None
        try:
            await applying
        except Exception as exc:
            self._failure = exc
            raise

    async def revoking(self, revoked: set[TopicPartition]) -> None:
        """Partitions are being taken away: finish and commit the batch being applied, drop the prepared one."""
        self.generation += 1
        await self._settled(wait=True)
        await self.on_revoked(revoked)

    async def _fetch(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """One batch: what is fetched now, plus, under load, what arrives within a short linger.

        Each batch costs a database transaction and an offset commit, so under a backlog larger
        batches are far cheaper per record; a lone record (no backlog) is handed on at once.
        """
        batches: dict[TopicPartition, list[ConsumerRecord]] = await self.consumer.getmany(
            timeout_ms=200, max_records=self.max_records)
        count = sum(len(rs) for rs in batches.values())
        deadline = time.monotonic() + LINGER_S
        while LINGER_THRESHOLD <= count < self.max_records and (left := deadline - time.monotonic()) > 0:
            more = await self.consumer.getmany(timeout_ms=int(left * 1000), max_records=self.max_records - count)
            if not more:
                break
            for tp, rs in more.items():
                batches.setdefault(tp, []).extend(rs)
                count += len(rs)
        return batches

    async def retrying(self, step: Callable[[], Awaitable[None]], before_retry: Apply | None = None) -> None:
        """Run `step`; while the infrastructure is unreachable, wait (with backoff) and run it again.

        Raises `_Stopped` when stopping while it waits, and any error that is not an outage at once.
        """
        delay, longest = self.retry_delays
        while True:
            try:
                await step()
                self._waiting(None)
                return
            except Exception as exc:
                outage = self.unavailable(exc)
                if outage is None:
                    raise
                self._waiting(f"{outage}")
            await self._pause(delay)
            delay = min(2 * delay, longest)
            if before_retry is not None:
                step = functools.partial(_in_turn, before_retry, step)
                before_retry = None

    def _waiting(self, outage: str | None) -> None:
        """Note what the loop waits for; logged once per change, not per retry."""
        if outage != self.waiting_for:
            if outage is None:
                log.info("%s: %s again; carrying on", self.service, _reachable_again(self.waiting_for))
            else:
                log.warning("%s: %s; the batch waits and is retried (nothing is committed meanwhile)",
                            self.service, outage)
        self.waiting_for = outage

    async def _pause(self, delay: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)
        if self._stop.is_set():
            raise _Stopped()

    async def _reload(self) -> None:
        # The failed transaction may have committed before its reply was lost: reload the partitions'
        # state from the database, as after a rebalance, so that the retry skips what was applied.
        await self.on_assigned(set(self.assigned))

    async def _process(self, apply: Apply, records: list[ConsumerRecord],
                       batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        try:
            await self.retrying(apply, before_retry=self._reload)
        except _Stopped:
            return  # left uncommitted: read again after the restart
        offsets = {tp: OffsetAndMetadata(rs[-1].offset + 1, "") for tp, rs in batches.items() if rs}
        await self.consumer.commit(offsets)
        self.records_seen += len(records)
        self._observe_delay(records)

    def _observe_delay(self, records: list[ConsumerRecord]) -> None:
        now = datetime.now(timezone.utc)
        accepted = (recorded_at_of(record.headers) for record in records)
        EVENT_DELAY.labels(self.service).observe_many(
            [max(0.0, (now - at).total_seconds()) for at in accepted if at is not None])


async def _in_turn(first: Apply, then: Apply) -> None:
    await first()
    await then()


def _reachable_again(outage: str | None) -> str:
    return (outage or "").replace("unreachable", "reachable").split(":")[0]
