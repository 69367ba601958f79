"""Intake on the real embedded broker and database: validation, idempotency, ordering and grace, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from schemas.registry import TOPIC_COMPLAINTS, TOPIC_DEADLETTER, TOPIC_EVENTS
from services.common import eventstore
from services.common.relay import seq_of
from services.common.settings import Settings
from services.intake.worker import IntakeWorker
from tests.helpers import bodies, cloudevent, produce, read_topic, running, send_events, unique

T = "2026-03-02T09:15:00+00:00"


def received(case: str, id_: str | None = None, area: str = "housing") -> dict[str, Any]:
    """A valid complaint.received."""
    return cloudevent("complaint.received", case, T,
                      {"service_area": area, "channel": "phone", "stage": "stage1", "serious": False}, id_)


def acknowledged(case: str, id_: str | None = None) -> dict[str, Any]:
    """A valid complaint.acknowledged (needs its case's complaint.received)."""
    return cloudevent("complaint.acknowledged", case, T, {"stage": "stage1"}, id_)


def compliment(subject: str, id_: str | None = None) -> dict[str, Any]:
    """A valid compliment.received (needs nothing before it)."""
    return cloudevent("compliment.received", subject, T, {"service_area": "housing", "channel": "web",
                                                           "about": "staff"}, id_)


def metric(name: str, **labels: str) -> float:
    """The current value of a sample in this process's registry (0 if absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30) -> None:
    """Poll an async condition until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.1)


async def history(pool: asyncpg.Pool, subject: str) -> list[eventstore.StoredEvent]:
    """One subject's history in order."""
    async with pool.acquire() as conn:
        return await eventstore.subject_history(conn, subject)


async def has_events(pool: asyncpg.Pool, subject: str, n: int) -> bool:
    """Whether the subject's history holds at least n events."""
    return len(await history(pool, subject)) >= n


def letters_for(records: list[ConsumerRecord], marker: str) -> list[dict[str, Any]]:
    """Dead letters whose original value contains `marker`."""
    out = bodies(records)
    return [letter for letter in out if marker in (letter.get("value") or "") or marker in (letter.get("key") or "")]


async def dead_letters(settings: Settings, marker: str, n: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Wait until `n` dead letters about `marker` are on the dead-letter topic; return them."""
    records = await read_topic(settings, TOPIC_DEADLETTER, lambda rs: len(letters_for(rs, marker)) >= n, timeout_s)
    return letters_for(records, marker)


async def test_valid_event_is_recorded_byte_for_byte_and_published(settings: Settings, pool: asyncpg.Pool) -> None:
    case = unique("case")
    event = received(case)
    raw = json.dumps(event, indent=1).encode()  # spacing intake must keep in `raw`
    before = metric("casefeedback_events_total", service="intake", type="complaint.received", result="accepted")
    async with running(IntakeWorker, settings):
        await produce(settings, TOPIC_COMPLAINTS, [raw], [case.encode()])
        await eventually(lambda: has_events(pool, case, 1))
        published = await read_topic(settings, TOPIC_EVENTS, lambda rs: any(r.key == case.encode() for r in rs))
    async with pool.acquire() as conn:
        stored_raw = await conn.fetchval("SELECT raw FROM events WHERE id = $1", event["id"])
    assert stored_raw == raw
    mine = [r for r in published if r.key == case.encode()]
    assert json.loads(mine[0].value)["data"]["themes"] == []  # the normalised body is published
    assert seq_of(mine[0].headers) is not None
    after = metric("casefeedback_events_total", service="intake", type="complaint.received", result="accepted")
    assert after - before == 1


async def test_bad_records_are_dead_lettered_with_reason_and_field(settings: Settings, pool: asyncpg.Pool) -> None:
    case = unique("case")
    bad_outcome = cloudevent("complaint.responded", case, T, {"stage": "stage1", "outcome": "maybe"})
    unknown = cloudevent("complaint.reopened", case, T, {})
    huge = json.dumps({**received(case), "padding": "x" * (settings.max_record_bytes + 10)}).encode()
    values = [f"not json {case}".encode(), json.dumps(bad_outcome).encode(), json.dumps(unknown).encode(), huge]
    too_large_before = metric("casefeedback_deadletter_total", reason="too_large")
    async with running(IntakeWorker, settings):
        await produce(settings, TOPIC_COMPLAINTS, values, [case.encode()] * 4)
        letters = await dead_letters(settings, case, 4)
    by_reason = {letter["reason"]: letter for letter in letters}
    assert set(by_reason) == {"not_json", "invalid_data", "unknown_type", "too_large"}
    assert "data.outcome" in by_reason["invalid_data"]["detail"]
    assert "complaint.reopened" in by_reason["unknown_type"]["detail"]
    assert by_reason["too_large"]["value"] == huge.decode()
    assert all(letter["topic"] == TOPIC_COMPLAINTS and letter["offset"] is not None for letter in letters)
    assert metric("casefeedback_deadletter_total", reason="too_large") - too_large_before == 1
    assert await history(pool, case) == []


async def test_same_id_twice_across_a_restart_is_one_event_and_a_conflict_is_dead_lettered(
        settings: Settings, pool: asyncpg.Pool) -> None:
    subject, event_id = unique("compliment"), unique("ev")
    first = compliment(subject, event_id)
    changed = {**first, "data": {**first["data"], "about": "service"}}
    dup_before = metric("casefeedback_events_total", service="intake", type="compliment.received", result="duplicate")
    async with running(IntakeWorker, settings):
        await send_events(settings, [first, first])
        await eventually(lambda: has_events(pool, subject, 1))
    async with running(IntakeWorker, settings):  # a restart: de-duplication is in the history, not in memory
        await send_events(settings, [first, changed])
        letters = await dead_letters(settings, subject, 1)
    assert letters[0]["reason"] == "invalid_data" and "conflict" in letters[0]["detail"]
    stored = await history(pool, subject)
    assert [(e.id, e.body["data"]["about"]) for e in stored] == [(event_id, "staff")]
    dups = metric("casefeedback_events_total", service="intake", type="compliment.received", result="duplicate")
    assert dups - dup_before == 2


async def test_early_acknowledgement_waits_and_follows_its_case_in_arrival_order(
        settings: Settings, pool: asyncpg.Pool) -> None:
    case = unique("case")
    ack, closed, rec = acknowledged(case), cloudevent("complaint.closed", case, T, {}), received(case)
    async with running(IntakeWorker, settings, out_of_order_grace_s=60.0):
        await send_events(settings, [ack])
        async with pool.acquire() as conn:
            await eventually(lambda: _held(conn, ack["id"]))
        await send_events(settings, [closed])
        await asyncio.sleep(0.5)
        await send_events(settings, [rec])
        await eventually(lambda: has_events(pool, case, 3))
    assert [e.id for e in await history(pool, case)] == [rec["id"], ack["id"], closed["id"]]


async def _held(conn: asyncpg.Connection, event_id: str) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM intake_held WHERE id = $1", event_id))


async def test_event_whose_case_never_comes_is_dead_lettered_out_of_order_after_the_grace(
        settings: Settings, pool: asyncpg.Pool) -> None:
    case = unique("case")
    ack = acknowledged(case)
    async with running(IntakeWorker, settings, out_of_order_grace_s=1.0):
        await send_events(settings, [ack])
        letters = await dead_letters(settings, case, 1)
        await send_events(settings, [received(case)])  # too late: the acknowledgement is not revived
        await eventually(lambda: has_events(pool, case, 1))
    assert letters[0]["reason"] == "out_of_order" and "complaint.received" in letters[0]["detail"]
    assert json.loads(letters[0]["value"])["id"] == ack["id"]
    assert [e.type for e in await history(pool, case)] == ["complaint.received"]


async def test_held_events_survive_a_restart(settings: Settings, pool: asyncpg.Pool) -> None:
    case = unique("case")
    ack = acknowledged(case)
    async with running(IntakeWorker, settings, out_of_order_grace_s=60.0):
        await send_events(settings, [ack])
        async with pool.acquire() as conn:
            await eventually(lambda: _held(conn, ack["id"]))
    async with running(IntakeWorker, settings, out_of_order_grace_s=60.0):
        await send_events(settings, [ack, received(case)])  # the redelivered ack is a duplicate of the held one
        await eventually(lambda: has_events(pool, case, 2))
    assert [e.type for e in await history(pool, case)] == ["complaint.received", "complaint.acknowledged"]


async def test_survey_response_waits_for_its_survey(settings: Settings, pool: asyncpg.Pool) -> None:
    survey, response = unique("survey"), unique("response")
    defined = cloudevent("survey.defined", survey, T, {"title": "t", "questions": [
        {"question_id": "q1", "text": "ok?", "scale": "yes_no", "positive": ["yes"]}]})
    answer = cloudevent("survey.response.submitted", response, T,
                        {"survey_id": survey, "respondent_type": "carer", "answers": {"q1": "yes"}})
    async with running(IntakeWorker, settings, out_of_order_grace_s=60.0):
        await send_events(settings, [answer])
        async with pool.acquire() as conn:
            await eventually(lambda: _held(conn, answer["id"]))
        await send_events(settings, [defined])
        await eventually(lambda: has_events(pool, response, 1))
    async with pool.acquire() as conn:
        seqs = {r["id"]: r["seq"] for r in await conn.fetch(
            "SELECT id, seq FROM events WHERE id = any($1::text[])", [defined["id"], answer["id"]])}
    assert seqs[defined["id"]] < seqs[answer["id"]]


async def test_acceptance_delay_is_observed(settings: Settings, pool: asyncpg.Pool) -> None:
    before = metric("casefeedback_event_delay_seconds_count", service="intake")
    subject = unique("compliment")
    async with running(IntakeWorker, settings):
        await send_events(settings, [compliment(subject)])
        await eventually(lambda: has_events(pool, subject, 1))
    assert metric("casefeedback_event_delay_seconds_count", service="intake") - before == 1


async def test_expiry_appends_a_held_event_whose_predecessor_is_already_in_the_history(
        settings: Settings, pool: asyncpg.Pool) -> None:
    from datetime import UTC, datetime, timedelta

    from services.common import kafka
    from services.intake import store
    from services.intake.domain import judge

    case = unique("case")
    rec, ack = received(case), acknowledged(case)
    raw = json.dumps(ack).encode()
    verdict = judge(raw, settings.max_record_bytes)
    now = datetime.now(UTC)
    held = store.HeldEvent(ack["id"], f"complaint.received/{case}", verdict.digest, verdict.body,  # type: ignore
                           raw, TOPIC_COMPLAINTS, 0, 0, case.encode(), now)
    async with pool.acquire() as conn, conn.transaction():  # a hold that missed its release
        await eventstore.append(conn, [eventstore.NewEvent(rec, json.dumps(rec).encode())])
        await store.hold(conn, [held], now - timedelta(seconds=5), now - timedelta(seconds=1))
    producer = kafka.producer(settings.kafka)
    await producer.start()
    try:
        assert await IntakeWorker(settings, pool, producer).expire_once(now) >= 1
    finally:
        await producer.stop()
    assert [e.type for e in await history(pool, case)] == ["complaint.received", "complaint.acknowledged"]
    async with pool.acquire() as conn:
        assert not await _held(conn, ack["id"])
