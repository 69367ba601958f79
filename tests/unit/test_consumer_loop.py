"""The consumer loop's two stages: batch N+1 is prepared while batch N is applied; offsets follow the applies.

The broker side is a stub (a scripted sequence of fetches and a log of commits): what is tested is the
loop's own ordering logic. The loop against a real broker runs in every integration test of a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from services.common.consumer import Apply, ConsumerLoop

TP = TopicPartition("feedback.complaints", 0)


def _records(first: int, n: int) -> list[ConsumerRecord]:
    return [ConsumerRecord(TP.topic, TP.partition, offset, 0, 0, None, b"{}", None, 0, 2, ())
            for offset in range(first, first + n)]


class ScriptedConsumer:
    """Hands out the scripted batches one fetch at a time, then nothing; logs commits."""

    def __init__(self, batches: list[list[ConsumerRecord]], log: list[str]):
        self.batches = batches
        self.log = log
        self.listener: Any = None

    def subscribe(self, topics: Sequence[str], listener: Any) -> None:
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, Any]:
        await asyncio.sleep(0)  # a fetch always yields to the event loop, as the real one does
        if self.batches:
            return {TP: self.batches.pop(0)}
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.log.append(f"commit {offsets[TP].offset}")


def _loop(consumer: ScriptedConsumer, prepare: Any) -> ConsumerLoop:
    return ConsumerLoop("test", consumer, [TP.topic], prepare)  # type: ignore[arg-type]


async def _run_until(loop: ConsumerLoop, log: list[str], last: str) -> None:
    stop = asyncio.Event()
    task = asyncio.ensure_future(loop.run(stop))
    for _ in range(200):
        if last in log or task.done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)


@pytest.mark.asyncio
async def test_next_batch_is_prepared_while_the_previous_one_applies_and_offsets_follow_in_order() -> None:
    log: list[str] = []
    second_prepared = asyncio.Event()

    async def prepare(records: Sequence[ConsumerRecord]) -> Apply:
        first = records[0].offset
        log.append(f"prepare {first}")
        if first == 10:
            second_prepared.set()

        async def apply() -> None:
            log.append(f"apply {first} start")
            if first == 0:  # the first batch's "database round trip" lasts until the second is prepared
                await asyncio.wait_for(second_prepared.wait(), 2)
            log.append(f"apply {first} done")
        return apply

    consumer = ScriptedConsumer([_records(0, 10), _records(10, 5)], log)
    await _run_until(_loop(consumer, prepare), log, "commit 15")
    assert log == ["prepare 0", "apply 0 start", "prepare 10", "apply 0 done", "commit 10",
                   "apply 10 start", "apply 10 done", "commit 15"]


@pytest.mark.asyncio
async def test_a_failed_apply_stops_the_loop_and_commits_nothing_after_it() -> None:
    log: list[str] = []

    async def prepare(records: Sequence[ConsumerRecord]) -> Apply:
        async def apply() -> None:
            raise RuntimeError("database gone")
        return apply

    loop = _loop(ScriptedConsumer([_records(0, 3), _records(3, 3)], log), prepare)
    with pytest.raises(RuntimeError, match="database gone"):
        await asyncio.wait_for(loop.run(asyncio.Event()), 5)
    assert not [entry for entry in log if entry.startswith("commit")]


@pytest.mark.asyncio
async def test_a_batch_prepared_before_a_revocation_is_dropped_and_the_applying_one_commits_first() -> None:
    log: list[str] = []
    loop: ConsumerLoop

    async def prepare(records: Sequence[ConsumerRecord]) -> Apply:
        first = records[0].offset
        if first == 10:  # partitions are revoked while the second batch is being prepared
            await loop.revoking({TP})
            log.append("revoked")

        async def apply() -> None:
            await asyncio.sleep(0.05)
            log.append(f"apply {first}")
        return apply

    loop = _loop(ScriptedConsumer([_records(0, 10), _records(10, 5), _records(15, 2)], log), prepare)
    await _run_until(loop, log, "commit 17")
    # batch 0 finished and committed before the revocation returned; batch 10 was never applied or
    # committed (the partition's next owner reads it again from offset 10); fetching went on after it.
    assert log == ["apply 0", "commit 10", "revoked", "apply 15", "commit 17"]


@pytest.mark.asyncio
async def test_a_failure_first_seen_by_a_revocation_still_stops_the_loop() -> None:
    log: list[str] = []
    loop: ConsumerLoop

    async def prepare(records: Sequence[ConsumerRecord]) -> Apply:
        first = records[0].offset
        if first == 10:  # the revocation (inside the rebalance listener) is the first to see batch 0 fail
            with pytest.raises(RuntimeError, match="database gone"):
                await loop.revoking({TP})
            log.append("revocation saw it")

        async def apply() -> None:
            await asyncio.sleep(0.05)
            if first == 0:
                raise RuntimeError("database gone")
            log.append(f"apply {first}")
        return apply

    loop = _loop(ScriptedConsumer([_records(0, 10), _records(10, 5), _records(15, 2)], log), prepare)
    with pytest.raises(RuntimeError, match="database gone"):
        await asyncio.wait_for(loop.run(asyncio.Event()), 5)
    assert log == ["revocation saw it"]  # nothing was committed, and no later batch was applied


def _database_outage(exc: BaseException) -> str | None:
    return "database unreachable" if isinstance(exc, OSError) else None


def _patient_loop(consumer: ScriptedConsumer, prepare: Any, on_assigned: Any = None) -> ConsumerLoop:
    extra = {"on_assigned": on_assigned} if on_assigned else {}
    return ConsumerLoop("test", consumer, [TP.topic], prepare, unavailable=_database_outage,  # type: ignore[arg-type]
                        retry_delays=(0.01, 0.05), **extra)


@pytest.mark.asyncio
async def test_a_batch_that_finds_the_database_gone_waits_reloads_its_partitions_and_commits_once() -> None:
    log: list[str] = []
    failures = [ConnectionRefusedError("refused"), ConnectionResetError("reset")]
    loop: ConsumerLoop

    async def reload(partitions: set[TopicPartition]) -> None:
        log.append("reload")

    async def prepare(records: Sequence[ConsumerRecord]) -> Apply:
        first = records[0].offset

        async def apply() -> None:
            if first == 0 and failures:
                log.append(f"apply {first} failed")
                raise failures.pop(0)
            log.append(f"apply {first} (waiting for: {loop.waiting_for})")
        return apply

    loop = _patient_loop(ScriptedConsumer([_records(0, 3), _records(3, 2)], log), prepare, reload)
    await _run_until(loop, log, "commit 5")
    # the transaction may have committed before its reply was lost: positions are reloaded before each retry
    assert log == ["apply 0 failed", "reload", "apply 0 failed", "reload",
                   "apply 0 (waiting for: database unreachable)", "commit 3", "apply 3 (waiting for: None)", "commit 5"]


@pytest.mark.asyncio
async def test_stopping_while_a_batch_waits_for_the_database_returns_quickly_and_commits_nothing() -> None:
    log: list[str] = []

    async def prepare(records: Sequence[ConsumerRecord]) -> Apply:
        async def apply() -> None:
            raise ConnectionRefusedError("refused")
        return apply

    loop = _patient_loop(ScriptedConsumer([_records(0, 3)], log), prepare)
    stop = asyncio.Event()
    task = asyncio.ensure_future(loop.run(stop))
    await asyncio.sleep(0.3)
    assert not task.done() and loop.waiting_for == "database unreachable"
    stop.set()
    await asyncio.wait_for(task, 2)  # returns, does not raise: the batch is read again after a restart
    assert log == []


@pytest.mark.asyncio
async def test_partitions_assigned_while_the_database_is_gone_load_their_state_once_it_is_back() -> None:
    log: list[str] = []
    failures = [ConnectionRefusedError("refused")]

    async def on_assigned(partitions: set[TopicPartition]) -> None:
        if failures:
            raise failures.pop(0)
        log.append(f"loaded {sorted(tp.partition for tp in partitions)}")

    async def prepare(records: Sequence[ConsumerRecord]) -> Apply:
        async def apply() -> None:
            return None
        return apply

    consumer = ScriptedConsumer([], log)
    _patient_loop(consumer, prepare, on_assigned)
    await asyncio.wait_for(consumer.listener.on_partitions_assigned({TP}), 2)
    assert log == ["loaded [0]"]
