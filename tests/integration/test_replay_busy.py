"""Replay on a busy system (contract 11.3), on the real embedded PostgreSQL.

While replay reads, new acts are recorded, the escalation, learning and metrics workers apply batches of the
history (through their own `handle`: checked against the history, applied and their positions saved in one
transaction, as a worker does with what the relay publishes) and their ticks fire due deadlines. The workers run
in this process without a broker: the test delivers the history to them as the relay would, always leaving a
tail not yet applied. Replay compares in one snapshot at the positions the services applied, so it finds nothing
wrong, in one process and in shards.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.registry import TOPIC_EVENTS
from services.audit.parallel import replay_parallel
from services.audit.projections import build_judgement, build_projections
from services.audit.replay import ReplaySummary, render_summary, replay
from services.common import eventstore
from services.common.embedded import PG_SERVICE, EmbeddedPostgres
from services.common.eventstore import NewEvent, canonical
from services.common.relay import RECORDED_HEADER, SEQ_HEADER, _partition
from services.common.settings import Settings
from services.common.worker import HistoryWorker
from services.deadlines.worker import TrackingWorker
from services.escalation.worker import EscalationWorker
from services.learning.worker import LearningWorker
from services.metrics.worker import MetricsWorker
from tests.helpers import cloudevent

START = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)  # months ago: every deadline is due by the wall clock
TAIL = 5  # history events the workers are always behind by
SURVEY = "busy-survey"


def _at(hours: float) -> str:
    return (START + timedelta(hours=hours)).isoformat()


def stories(seed: int, cases: int) -> Iterator[dict[str, Any]]:
    """Backdated traffic as upstream systems send it: complaints answered in time, late or never, some closed
    (a learning stage opens), compliments and survey responses, the stories' acts interleaved."""
    rng = random.Random(seed)
    yield cloudevent("survey.defined", SURVEY, _at(0), {"title": "Busy", "questions": [
        {"question_id": "q1", "text": "Satisfied?", "scale": "yes_no", "positive": ["yes"]}]})
    lanes: list[list[dict[str, Any]]] = []
    for n in range(cases):
        case, hours = f"busy-{seed}-case-{n}", rng.randrange(0, 24 * 40)
        lane = [cloudevent("complaint.received", case, _at(hours), {
            "service_area": "housing", "channel": "web", "stage": "stage1", "serious": False})]
        fate = rng.random()
        if fate < 0.7:
            answer = hours + 24 * rng.choice([1, 2, 3, 12])  # in time, or after the breach
            lane.append(cloudevent("complaint.responded", case, _at(answer), {"stage": "stage1",
                                                                               "outcome": "upheld"}))
            if rng.random() < 0.5:
                lane.append(cloudevent("complaint.closed", case, _at(answer + 1), {}))
        lanes.append(lane)
        lanes.append([cloudevent("compliment.received", f"busy-{seed}-compliment-{n}", _at(hours),
                                 {"service_area": "housing", "channel": "email", "about": "staff"})])
        lanes.append([cloudevent("survey.response.submitted", f"busy-{seed}-response-{n}", _at(hours),
                                 {"survey_id": SURVEY, "respondent_type": "service_user",
                                  "answers": {"q1": rng.choice(["yes", "no"])}})])
    while lanes:
        lane = rng.choice(lanes)
        yield lane.pop(0)
        if not lane:
            lanes.remove(lane)


class Services:
    """Escalation, learning and metrics workers fed the history as the relay publishes it, with their ticks."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool):
        self.partitions = settings.kafka.partitions
        kinds: tuple[type[HistoryWorker], ...] = (EscalationWorker, LearningWorker, MetricsWorker)
        self.workers = [kind(settings, pool, None) for kind in kinds]  # no producer: no dead letters here
        self.pool = pool
        self.delivered = 0
        self.offsets = [0] * self.partitions

    async def start(self) -> None:
        assigned = {TopicPartition(TOPIC_EVENTS, p) for p in range(self.partitions)}
        for worker in self.workers:
            if isinstance(worker, TrackingWorker):
                await worker.setup()
            await worker.on_assigned(assigned)

    async def deliver(self, upto: int) -> None:
        """Hand every worker the history after what it was given, up to seq `upto`, as one batch."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT seq, subject, recorded_at, body::text AS body FROM events "
                                    "WHERE seq > $1 AND seq <= $2 ORDER BY seq", self.delivered, upto)
        if not rows:
            return
        records = [self._record(r) for r in rows]
        for worker in self.workers:
            await worker.handle(records)
        self.delivered = rows[-1]["seq"]

    def _record(self, row: asyncpg.Record) -> ConsumerRecord:
        value, key = row["body"].encode(), row["subject"].encode()
        partition = _partition(key, self.partitions)
        self.offsets[partition] += 1
        headers = [(SEQ_HEADER, str(row["seq"]).encode()), (RECORDED_HEADER, row["recorded_at"].isoformat().encode())]
        return ConsumerRecord(TOPIC_EVENTS, partition, self.offsets[partition], 0, 0, key, value, None, len(key),
                              len(value), headers)

    async def tick(self) -> None:
        """Each tracking worker's tick, at the wall clock (what its tick loop does)."""
        for worker in self.workers:
            if isinstance(worker, TrackingWorker):
                await worker.tick_once()


async def record(pool: asyncpg.Pool, events: list[dict[str, Any]]) -> int:
    """Append inbound events as intake does; the history's head after them."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            await eventstore.append(conn, [NewEvent(e, canonical(e)) for e in events])
        return int(await conn.fetchval("SELECT seq FROM chain_head"))


@pytest.fixture(scope="module")
def busy_settings(server: EmbeddedPostgres, settings: Settings) -> Settings:
    # No grace: the tick fires a caught-up case at once, so firings land among replay's reads.
    return replace(settings, database_url=server.url_for(PG_SERVICE), out_of_order_grace_s=0.0)


@pytest.fixture
async def busy_pool(busy_settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(busy_settings.require_database(), min_size=2, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


async def _busy(services: Services, pool: asyncpg.Pool, traffic: Iterator[dict[str, Any]], stop: asyncio.Event,
                steps: list[int]) -> None:
    """Record a few acts, apply all but the tail, tick; again and again until told to stop."""
    while not stop.is_set():
        chunk = [e for _, e in zip(range(4), traffic, strict=False)]
        head = await record(pool, chunk) if chunk else services.delivered + TAIL
        await services.deliver(head - TAIL)
        await services.tick()
        steps.append(head)
        await asyncio.sleep(0)


async def _replay_while_busy(settings: Settings, pool: asyncpg.Pool, services: Services,
                             traffic: Iterator[dict[str, Any]], workers: int) -> tuple[ReplaySummary, list[int]]:
    stop, steps = asyncio.Event(), list[int]()
    busy = asyncio.ensure_future(_busy(services, pool, traffic, stop, steps))
    conn = await asyncpg.connect(settings.require_database())
    try:
        if workers == 1:
            summary = await replay(conn, build_projections(settings), batch=2, judgement=build_judgement(settings))
        else:
            summary = await replay_parallel(conn, settings, batch=2, workers=workers)
    finally:
        await conn.close()
        stop.set()
        await busy
    return summary, steps


async def test_replay_while_workers_apply_batches_and_ticks_fire_finds_no_difference(
        busy_settings: Settings, busy_pool: asyncpg.Pool) -> None:
    async with busy_pool.acquire() as conn:  # a history of its own on this database
        assert await conn.fetchval("SELECT seq FROM chain_head") == 0, "the module's database holds history"
    services = Services(busy_settings, busy_pool)
    await services.start()
    traffic = stories(seed=1, cases=400)
    head = await record(busy_pool, [e for _, e in zip(range(240), traffic, strict=False)])
    await services.deliver(head - TAIL)
    await services.tick()
    for workers in (1, 2, 1):
        summary, steps = await _replay_while_busy(busy_settings, busy_pool, services, traffic, workers)
        shown = render_summary(summary)
        assert len(steps) >= 2, f"the services hardly worked during the replay ({len(steps)} step(s))\n{shown}"
        assert summary.differences == [], shown
        assert summary.compared == ["escalation", "learning", "metrics"], shown
        assert summary.events >= head, shown
        assert sum(summary.unapplied.values()) > 0, f"no tail left unapplied: the test proves nothing\n{shown}"
    async with busy_pool.acquire() as conn:
        fired = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'deadline.breached'")
    assert fired > 0  # the ticks fired breaches along the way
