"""Intake judges each act at the door against its case's story (contract 11.1), on the real broker and database."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from services.common.settings import Settings
from services.intake.worker import IntakeWorker
from tests.helpers import cloudevent, running, send_events, unique
from tests.integration.test_intake_flow import dead_letters, eventually, has_events, history


def _received(case: str, procedure: str = "spso-mchp") -> dict[str, object]:
    return cloudevent("complaint.received", case, "2026-03-02T09:15:00+00:00",
                      {"service_area": "housing", "channel": "phone", "stage": "stage1", "serious": False,
                       "procedure": procedure})


async def test_acts_the_procedure_forbids_are_dead_lettered_by_intake_and_never_recorded(
        settings: Settings, pool: asyncpg.Pool) -> None:
    case = unique("case")
    allowed = [_received(case),
               cloudevent("complaint.responded", case, "2026-03-04T10:00:00+00:00",
                          {"stage": "stage1", "outcome": "not_upheld"}),
               cloudevent("complaint.escalated", case, "2026-03-05T10:00:00+00:00", {"to_stage": "stage2"})]
    forbidden = [cloudevent("complaint.escalated", case, "2026-03-06T10:00:00+00:00", {"to_stage": "stage3"}),
                 cloudevent("complaint.suspended", case, "2026-03-06T11:00:00+00:00",
                            {"stage": "stage2", "reason": "advocate_appointment"})]
    async with running(IntakeWorker, settings):
        await send_events(settings, allowed)
        await eventually(lambda: has_events(pool, case, 3))
        await send_events(settings, forbidden)
        letters = await dead_letters(settings, case, 2)
        await send_events(settings, [cloudevent("complaint.responded", case, "2026-03-20T10:00:00+00:00",
                                                {"stage": "stage2", "outcome": "upheld"})])
        await eventually(lambda: has_events(pool, case, 4))
    by_type = {letter["detail"].split(" ")[0]: letter for letter in letters}
    assert by_type["complaint.escalated"]["reason"] == "not_allowed"
    assert by_type["complaint.escalated"]["detail"] == ("complaint.escalated to_stage stage3: procedure spso-mchp "
                                                        "has no stage stage3 (stages: stage1, stage2)")
    assert by_type["complaint.suspended"]["reason"] == "not_allowed"
    recorded = [e.type for e in await history(pool, case)]
    assert recorded == ["complaint.received", "complaint.responded", "complaint.escalated", "complaint.responded"]


async def test_an_extension_past_the_limit_is_refused_at_the_door(settings: Settings, pool: asyncpg.Pool) -> None:
    case = unique("case")
    async with running(IntakeWorker, settings):
        await send_events(settings, [_received(case)])
        await eventually(lambda: has_events(pool, case, 1))
        await send_events(settings, [cloudevent("complaint.extension_agreed", case, "2026-03-03T10:00:00+00:00",
                                                {"stage": "stage1", "new_due": "2026-04-20", "reason": "agreed"})])
        letters = await dead_letters(settings, case, 1)
    assert letters[0]["reason"] == "not_allowed" and "at most 10 working days" in letters[0]["detail"]
    assert [e.type for e in await history(pool, case)] == ["complaint.received"]


async def test_a_late_act_is_judged_at_its_own_time(settings: Settings, pool: asyncpg.Pool) -> None:
    """An acknowledgement dated before the escalation is admitted; a response dated after a withdrawal is not."""
    case, other = unique("case"), unique("case")
    async with running(IntakeWorker, settings):
        await send_events(settings, [
            _received(case, "dundee-2011") | {"data": {"service_area": "housing", "channel": "phone",
                                                       "stage": "level1", "serious": False,
                                                       "procedure": "dundee-2011"}},
            cloudevent("complaint.responded", case, "2026-03-06T10:00:00+00:00",
                       {"stage": "level1", "outcome": "upheld"}),
            cloudevent("complaint.escalated", case, "2026-03-09T10:00:00+00:00", {"to_stage": "level2"}),
            _received(other),
            cloudevent("complaint.withdrawn", other, "2026-03-03T10:00:00+00:00", {})])
        await eventually(lambda: has_events(pool, case, 3))
        await eventually(lambda: has_events(pool, other, 2))
        await send_events(settings, [
            cloudevent("complaint.acknowledged", case, "2026-03-03T10:00:00+00:00", {"stage": "level1"}),
            cloudevent("complaint.responded", other, "2026-03-04T10:00:00+00:00",
                       {"stage": "stage1", "outcome": "upheld"})])
        await eventually(lambda: has_events(pool, case, 4))
        letters = await dead_letters(settings, other, 1)
    assert letters[0]["reason"] == "not_allowed" and "withdrawn" in letters[0]["detail"]
    assert [e.type for e in await history(pool, other)] == ["complaint.received", "complaint.withdrawn"]


async def test_a_case_recorded_before_intake_kept_stories_is_judged_from_its_recorded_acts(
        settings: Settings, pool: asyncpg.Pool) -> None:
    """A history recorded under contract 1.1 (no story row): intake rebuilds the case from its recorded acts, once,
    judging them as every reader does (the refused escalation to stage3 in it is left out)."""
    from tests.integration.test_escalation_support import accept

    case = unique("case")
    await accept(pool, [_received(case),
                        cloudevent("complaint.responded", case, "2026-03-04T10:00:00+00:00",
                                   {"stage": "stage1", "outcome": "not_upheld"}),
                        cloudevent("complaint.escalated", case, "2026-03-05T09:00:00+00:00", {"to_stage": "stage3"})])
    async with pool.acquire() as conn:  # as if intake began keeping stories after these were recorded
        await conn.execute("UPDATE intake_cases_since SET seq = (SELECT max(seq) FROM events)")
    try:
        async with running(IntakeWorker, settings):
            await send_events(settings, [
                cloudevent("complaint.acknowledged", case, "2026-03-05T10:00:00+00:00", {"stage": "stage2"}),
                cloudevent("complaint.escalated", case, "2026-03-05T11:00:00+00:00", {"to_stage": "stage2"})])
            letters = await dead_letters(settings, case, 1)
            await eventually(lambda: has_events(pool, case, 4))
    finally:
        async with pool.acquire() as conn:
            await conn.execute("UPDATE intake_cases_since SET seq = 0")
    # the acknowledgement names stage2 while the case is at stage1 (the recorded stage3 escalation is refused)
    assert letters[0]["reason"] == "not_allowed" and "the case is at stage stage1" in letters[0]["detail"]
    assert [e.type for e in await history(pool, case)][-1] == "complaint.escalated"
    async with pool.acquire() as conn:
        kept = await conn.fetchval("SELECT acts::text FROM intake_cases WHERE subject = $1", case)
    assert [a["type"] for a in json.loads(kept)] == ["complaint.received", "complaint.responded",
                                                    "complaint.escalated"]
    assert json.loads(kept)[-1]["data"] == {"to_stage": "stage2"}


async def test_an_act_that_arrives_before_the_act_it_needs_is_admitted_once_that_act_comes(
        settings: Settings, pool: asyncpg.Pool) -> None:
    """Upstream systems send out of order: a stage 2 withdrawal that arrives before the escalation dated before it
    waits (not dead-lettered) and is admitted as soon as the escalation is, long before the grace would end."""
    case, later = unique("case"), unique("case")
    async with running(IntakeWorker, settings, out_of_order_grace_s=600):
        await send_events(settings, [_received(case), _received(later)])
        await eventually(lambda: has_events(pool, later, 1))
        withdrawn = cloudevent("complaint.withdrawn", case, "2026-03-10T10:00:00+00:00", {"stage": "stage2"})
        escalated = cloudevent("complaint.escalated", case, "2026-03-09T10:00:00+00:00", {"to_stage": "stage2"})
        await send_events(settings, [withdrawn, escalated])  # one batch, the withdrawal first
        await eventually(lambda: has_events(pool, case, 3))
        await send_events(settings, [cloudevent("complaint.withdrawn", later, "2026-03-10T10:00:00+00:00",
                                                {"stage": "stage2"})])  # alone: it waits
        await asyncio.sleep(1.0)
        assert len(await history(pool, later)) == 1
        await send_events(settings, [cloudevent("complaint.escalated", later, "2026-03-09T10:00:00+00:00",
                                                {"to_stage": "stage2"})])  # a later batch: the held act follows
        await eventually(lambda: has_events(pool, later, 3))
    assert [e.type for e in await history(pool, case)][1:] == ["complaint.escalated", "complaint.withdrawn"]
    assert [e.type for e in await history(pool, later)][1:] == ["complaint.escalated", "complaint.withdrawn"]
