"""Learning on the real broker and database: plans on time, late, never submitted, reopened complaints,
early actions held then applied or dead-lettered out_of_order, a restart in the middle, and metrics."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from schemas.registry import TOPIC_ALERTS, TOPIC_DEADLETTER
from services.common.settings import Settings
from services.learning.domain import SOURCE
from services.learning.worker import LearningWorker
from tests.helpers import bodies, read_topic, running, unique, wait_for
from tests.integration.test_escalation_support import accept, cloudevent, derived, received, wait_derived

CLOSED_AT = "2026-04-01T16:00:00+00:00"
DUE = "2026-04-30T23:59:59+01:00"


def _closed(case: str, time: str = CLOSED_AT) -> dict[str, Any]:
    return cloudevent("complaint.closed", case, time, {})


def _action(case: str, action_id: str, level: str, time: str = "2026-04-02T10:00:00+01:00") -> dict[str, Any]:
    return cloudevent("learning.action.added", case, time, {"action_id": action_id, "level": level,
                                                             "description": "team briefing"})


def _submitted(case: str, time: str) -> dict[str, Any]:
    return cloudevent("learning.plan.submitted", case, time, {})


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_plan_on_time_late_never_submitted_and_reopened(settings: Settings, pool: asyncpg.Pool) -> None:
    on_time, late, never, reopened = (unique("learn") for _ in range(4))
    async with running(LearningWorker, settings, tick_interval_s=0.1):
        await accept(pool, [
            received(on_time, "2026-03-02T09:15:00+00:00"), _closed(on_time), _action(on_time, "a1", "local"),
            cloudevent("learning.action.completed", on_time, "2026-04-10T10:00:00+01:00", {"action_id": "a1"}),
            _submitted(on_time, "2026-04-14T10:00:00+01:00"),
            received(late, "2026-03-02T09:15:00+00:00"), _closed(late), _submitted(late, "2026-05-05T10:00:00+01:00"),
            received(never, "2026-03-02T09:15:00+00:00"), _closed(never),
            received(reopened, "2026-03-02T09:15:00+00:00"),
            cloudevent("complaint.responded", reopened, "2026-03-06T10:00:00+00:00",  # an escalation after a
                       {"stage": "stage1", "outcome": "not_upheld"}),  # closure follows a response (contract 11.1)
            _closed(reopened),
            _submitted(reopened, "2026-04-14T10:00:00+01:00"),
            cloudevent("complaint.escalated", reopened, "2026-04-20T10:00:00+01:00", {"to_stage": "stage2"}),
            _closed(reopened, "2026-06-01T10:00:00+01:00")])
        found = await wait_derived(pool, on_time, SOURCE, 4)
        assert _types(found) == ["learning.stage.opened", "deadline.scheduled", "learning.stage.completed",
                                 "deadline.met"]
        assert found[0]["data"] == {"due": DUE} and found[2]["data"] == {"due": DUE, "late": False}
        found = await wait_derived(pool, late, SOURCE, 6)
        assert _types(found)[2:] == ["deadline.warning", "learning.stage.overdue", "learning.stage.completed",
                                     "deadline.met"]
        assert found[4]["data"]["late"] is True
        found = await wait_derived(pool, never, SOURCE, 4)
        assert _types(found) == ["learning.stage.opened", "deadline.scheduled", "deadline.warning",
                                 "learning.stage.overdue"]
        found = await wait_derived(pool, reopened, SOURCE, 6)
        opened = [e for e in found if e["type"] == "learning.stage.opened"]
        # 15 June 2026 is a Scottish public holiday in the `holidays` data (FIFA World Cup), hence the 30th.
        assert [e["data"]["due"][:10] for e in opened] == ["2026-04-30", "2026-06-30"]
        await asyncio.sleep(1.0)
    assert len(await derived(pool, never, SOURCE)) == 4
    alerts = await read_topic(settings, TOPIC_ALERTS, lambda rs: sum(r.key == never.encode() for r in rs) >= 2)
    assert sorted(b["type"] for b in bodies(alerts) if b["subject"] == never) == [
        "deadline.warning", "learning.stage.overdue"]


async def test_actions_dated_before_the_closure_in_a_1_1_history_are_skipped_not_held(
        settings: Settings, pool: asyncpg.Pool) -> None:
    """Learning acts belong after closure (contract 11.1): one recorded before it is refused by the one judgement
    and skipped by learning, never held and never dead-lettered (intake holds early ones until the closure)."""
    applied, orphan = unique("learn"), unique("learn")
    early = _action(applied, "a1", "systemic", "2026-03-30T10:00:00+01:00")
    lost = _action(orphan, "a9", "individual", "2026-03-30T10:00:00+01:00")
    async with running(LearningWorker, settings, tick_interval_s=0.1):
        await accept(pool, [received(applied, "2026-03-02T09:15:00+00:00"), early,
                            received(orphan, "2026-03-02T09:15:00+00:00"), lost])
        await accept(pool, [_closed(applied), _action(applied, "a2", "local")])
        await wait_derived(pool, applied, SOURCE, 2)
        for _ in range(150):  # up to 15 s for the action after the closure to join the plan
            if await _plan_of(pool, applied):
                break
            await asyncio.sleep(0.1)
    async with pool.acquire() as conn:
        state = json.loads(await conn.fetchval("SELECT state::text FROM learning_cases WHERE subject = $1", applied))
        held = await conn.fetchval("SELECT state->'held' FROM learning_cases WHERE subject = $1", orphan)
    assert state["stages"][0]["actions"] == [["a2", "local", False]] and state["held"] == []
    assert json.loads(held) == []
    letters = await read_topic(settings, TOPIC_DEADLETTER, lambda rs: True, timeout_s=5)
    assert not any(b.get("key") in (applied, orphan) for b in bodies(letters))


async def _plan_of(pool: asyncpg.Pool, case: str) -> bool:
    async with pool.acquire() as conn:
        state = await conn.fetchval("SELECT state::text FROM learning_cases WHERE subject = $1", case)
    return state is not None and bool(json.loads(state)["stages"]) and bool(json.loads(state)["stages"][0]["actions"])


async def test_restart_in_the_middle_completes_the_stage_once(settings: Settings, pool: asyncpg.Pool) -> None:
    case = unique("learn")
    # Closed now by the wall clock, so the stage is not yet due while the worker is down.
    now = datetime.now(UTC).replace(microsecond=0)
    at = [(now + timedelta(minutes=i)).isoformat() for i in range(4)]
    async with running(LearningWorker, settings, tick_interval_s=0.1):
        await accept(pool, [received(case, (now - timedelta(days=30)).isoformat()), _closed(case, at[0]),
                            _action(case, "a1", "individual", at[1])])
        await wait_derived(pool, case, SOURCE, 2)
    await accept(pool, [cloudevent("learning.action.completed", case, at[2], {"action_id": "a1"}),
                        _submitted(case, at[3])])
    async with running(LearningWorker, settings, tick_interval_s=0.1):
        await wait_derived(pool, case, SOURCE, 4)
        await asyncio.sleep(1.0)
    found = await derived(pool, case, SOURCE)
    assert _types(found) == ["learning.stage.opened", "deadline.scheduled", "learning.stage.completed",
                             "deadline.met"]
    assert found[2]["data"]["late"] is False
    async with pool.acquire() as conn:
        state = json.loads(await conn.fetchval("SELECT state::text FROM learning_cases WHERE subject = $1", case))
    assert state["stages"][0]["actions"] == [["a1", "individual", True]]
    assert state["stages"][0]["incomplete_actions"] == 0


async def test_metrics_stages_open_overdue_actions_and_themes(settings: Settings, pool: asyncpg.Pool) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    case, pending = unique("learn"), unique("learn")
    async with running(LearningWorker, settings, tick_interval_s=0.1):
        await wait_for(lambda: REGISTRY.get_sample_value("casefeedback_learning_stages_open") is not None, 10)
        await asyncio.sleep(2.5)  # a gauge refresh over what earlier tests left open
        before = (value("casefeedback_learning_stages_open"), value("casefeedback_learning_stages_overdue"),
                  value("casefeedback_learning_actions_total", level="systemic", state="opened",
                        service_area="community_care"),
                  value("casefeedback_complaint_themes_total", service_area="community_care", theme="staff_attitude"))
        await accept(pool, [received(case, "2026-03-02T09:15:00+00:00"), _closed(case),
                            _action(case, "s1", "systemic"),
                            received(pending, "2026-11-01T09:15:00+00:00"),
                            _closed(pending, "2099-01-01T09:00:00+00:00")])
        await wait_derived(pool, case, SOURCE, 4)

        def moved() -> bool:
            now = (value("casefeedback_learning_stages_open"), value("casefeedback_learning_stages_overdue"),
                   value("casefeedback_learning_actions_total", level="systemic", state="opened",
                         service_area="community_care"),
                   value("casefeedback_complaint_themes_total", service_area="community_care",
                         theme="staff_attitude"))
            return [n - b for n, b in zip(now, before, strict=True)] == [2, 1, 1, 2]

        await wait_for(moved, 15)


async def test_a_refused_event_is_dead_lettered_by_learning_as_escalation_does(
        settings: Settings, pool: asyncpg.Pool) -> None:
    # The attack: learning dropped the engine's refusals on the floor; a refused event left no trace.
    case = unique("learn-refused")
    broken = cloudevent("learning.action.added", case, "2026-04-02T10:00:00+01:00", {"action_id": "a1"})
    async with running(LearningWorker, settings, tick_interval_s=0.1):
        await accept(pool, [received(case, "2026-03-02T09:15:00+00:00"), _closed(case), broken,
                            _action(case, "a2", "local")])
        letters = await read_topic(settings, TOPIC_DEADLETTER, lambda rs: any(r.key == case.encode() for r in rs))
    letter = next(b for b in bodies(letters) if b.get("key") == case)
    assert letter["reason"] == "internal" and json.loads(letter["value"])["id"] == broken["id"]  # a fault
    assert letter["detail"].startswith("learning: learning.action.added cannot be applied: KeyError")
    async with pool.acquire() as conn:
        state = json.loads(await conn.fetchval("SELECT state::text FROM learning_cases WHERE subject = $1", case))
    assert state["stages"][0]["actions"] == [["a2", "local", False]]  # the rest of the case flowed on
