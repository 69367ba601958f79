"""Records of `casefeedback.events` are checked against the history before they move anything.

The attacks: a record written to the internal topic with a forged `casefeedback-seq` header (far
beyond the history's head, unreadable, missing, or naming a real seq with another body), and a
history that lost committed events (a database crash without durability) so that seqs a consumer
already applied now name other events.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord

from schemas.registry import TOPIC_EVENTS
from services.common import db, eventstore
from services.common.embedded import EmbeddedPostgres
from services.common.relay import RECORDED_HEADER, SEQ_HEADER
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.common.worker import UNTRUSTED, HistoryRecord, HistoryRewound, HistoryWorker
from services.escalation.domain import SOURCE
from services.escalation.worker import EscalationWorker
from tests.helpers import cloudevent, running, unique
from tests.integration.test_escalation_support import accept, received, wait_derived

MARCH = "2026-03-02T09:15:00+00:00"


@pytest.fixture(scope="module")
async def escalation(settings: Settings) -> AsyncIterator[Runtime]:
    async with running(EscalationWorker, settings, tick_interval_s=0.1) as runtime:
        yield runtime


def _untrusted(problem: str) -> float:
    return UNTRUSTED.labels("escalation", problem)._value.get()


async def _forge(settings: Settings, case: str, headers: list[tuple[str, bytes]]) -> None:
    """A record on the internal topic, keyed like the case (so on its partition), that the relay never wrote."""
    fake = cloudevent("complaint.received", unique("forged"), MARCH,
                      {"service_area": "housing", "channel": "web", "stage": "stage1", "serious": False})
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**settings.kafka.client_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC_EVENTS, json.dumps(fake).encode(), key=case.encode(), headers=headers)
    finally:
        await producer.stop()


@pytest.mark.parametrize(("header", "problem"), [
    (b"999999999999", "not_in_history"), (b"abc", "bad_seq"), (None, "no_seq")])
async def test_a_forged_internal_record_is_refused_loudly_and_later_real_events_still_apply(
        escalation: Runtime, pool: asyncpg.Pool, settings: Settings, header: bytes | None, problem: str) -> None:
    case = unique("trust")
    before = _untrusted(problem)
    headers = [(RECORDED_HEADER, b"2026-03-02T09:15:00+00:00")]
    if header is not None:
        headers.append((SEQ_HEADER, header))
    await _forge(settings, case, headers)
    await accept(pool, [received(case, MARCH)])
    await wait_derived(pool, case, SOURCE, 1)  # the real event behind the forged one was applied
    assert escalation.loop is not None and escalation.loop.consuming
    assert _untrusted(problem) == before + 1


@pytest.fixture(scope="module")
def own_url() -> Iterator[str]:
    """A separate database whose history this module may rewind."""
    server = EmbeddedPostgres().start()
    try:
        asyncio.run(db.migrate(server.url))
        yield server.url
    finally:
        server.stop()


class _Collecting(HistoryWorker):
    name = "trust-test"

    def __init__(self, settings: Settings, pool: asyncpg.Pool):
        super().__init__(settings, pool, None)  # type: ignore[arg-type]
        self.seen: list[HistoryRecord] = []

    async def apply(self, conn: asyncpg.Connection, events: Any) -> None:
        self.seen.extend(events)


async def _record(conn: asyncpg.Connection, seq: int, offset: int, body: str | None = None) -> ConsumerRecord:
    row = await conn.fetchrow("SELECT subject, recorded_at, body::text AS body FROM events WHERE seq = $1", seq)
    value = (body if body is not None else row["body"]).encode()
    headers = [(SEQ_HEADER, str(seq).encode()), (RECORDED_HEADER, row["recorded_at"].isoformat().encode())]
    return ConsumerRecord(TOPIC_EVENTS, 0, offset, 0, 0, row["subject"].encode(), value, None, 0, len(value), headers)


async def _append(conn: asyncpg.Connection, events: list[dict[str, Any]]) -> list[int]:
    async with conn.transaction():
        new = [eventstore.NewEvent(e, json.dumps(e).encode()) for e in events]
        stored = (await eventstore.append(conn, new)).stored
    return [s.seq for s in stored]


async def _lose_tail(conn: asyncpg.Connection, keep: int) -> None:
    """What a crash without durability did: the history after `keep` is gone, the chain head with it."""
    await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    await conn.execute("DELETE FROM events WHERE seq > $1", keep)
    await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    await conn.execute("UPDATE chain_head SET seq = seq_, hash = h FROM (SELECT seq AS seq_, hash AS h FROM events "
                       "WHERE seq = $1) AS kept", keep)


async def test_a_record_with_a_real_seq_but_another_body_is_refused(own_url: str, settings: Settings) -> None:
    pool = await asyncpg.create_pool(own_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            case = unique("trust")
            seq, = await _append(conn, [received(case, MARCH)])
            forged = await _record(conn, seq, 0, json.dumps(received(case, "2026-01-01T00:00:00+00:00")))
            real = await _record(conn, seq, 1)
        worker = _Collecting(settings, pool)
        await worker.handle([forged])
        assert worker.seen == [] and worker.applied.get(0, 0) == 0
        await worker.handle([real])
        assert [r.seq for r in worker.seen] == [seq]
    finally:
        await pool.close()


async def test_a_consumer_stops_when_a_seq_it_applied_now_names_another_event(own_url: str,
                                                                           settings: Settings) -> None:
    pool = await asyncpg.create_pool(own_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            seqs = await _append(conn, [received(unique("lost"), MARCH) for _ in range(3)])
            records = [await _record(conn, s, i) for i, s in enumerate(seqs)]
        worker = _Collecting(settings, pool)
        await worker.handle(records)
        assert [r.seq for r in worker.seen] == seqs
        async with pool.acquire() as conn:
            await _lose_tail(conn, seqs[0])
            reused = await _append(conn, [received(unique("other"), MARCH) for _ in range(2)])
            assert reused == seqs[1:]  # the lost events' seqs now name other events
            fresh = [await _record(conn, s, 10 + i) for i, s in enumerate(reused)]
        with pytest.raises(HistoryRewound, match="history seq"):
            await worker.handle(fresh)
        restarted = _Collecting(settings, pool)  # the same after a restart: positions come from the database
        from aiokafka import TopicPartition

        await restarted.on_assigned({TopicPartition(TOPIC_EVENTS, 0)})
        with pytest.raises(HistoryRewound):
            await restarted.handle(fresh)
        assert restarted.seen == []
    finally:
        await pool.close()


async def test_an_erased_event_republished_with_its_redacted_body_is_still_the_historys_event(
        own_url: str, settings: Settings) -> None:
    from datetime import UTC, datetime

    from services.audit.erasure import erase

    pool = await asyncpg.create_pool(own_url, min_size=1, max_size=2)
    try:
        case = unique("erased")
        event = received(case, MARCH)
        event["data"]["complainant_ref"] = "ref-8812"
        async with pool.acquire() as conn:
            seq, = await _append(conn, [event])
            original = await _record(conn, seq, 0)
            async with conn.transaction():
                await erase(conn, case, "erasure request", datetime.now(UTC))
            redacted = await _record(conn, seq, 1)  # what a relay republishing the history now sends
        assert b"ref-8812" in original.value and b"ref-8812" not in redacted.value
        before = UNTRUSTED.labels("trust-test", "not_history_event")._value.get()
        worker = _Collecting(settings, pool)
        await worker.handle([redacted])
        assert [r.seq for r in worker.seen] == [seq]
        assert UNTRUSTED.labels("trust-test", "not_history_event")._value.get() == before
    finally:
        await pool.close()
