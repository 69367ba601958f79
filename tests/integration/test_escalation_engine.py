"""The shared engine on the real database: concurrent ticks and a tick racing the consumer derive each
warning and breach once, by row locks and deadline flags (not merely by the history's id de-duplication)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.common import eventstore
from services.common.worker import HistoryRecord
from services.deadlines import engine
from services.deadlines.engine import Applied
from services.deadlines.procedure_files import load_book
from services.escalation import adapters, domain
from services.escalation.domain import SOURCE
from services.escalation.projection import PROJECTION
from tests.helpers import cloudevent, unique
from tests.integration.test_escalation_support import derived, received

PARTITION = 97  # no running worker owns it: only this test's ticks see these cases
TRACKER = PROJECTION.tracker(load_book())


async def _accept_and_apply(pool: asyncpg.Pool, events: list[dict[str, Any]]) -> Applied:
    """Accept as intake does (its own transaction), then apply as the worker does (case rows locked first)."""
    async with pool.acquire() as conn, conn.transaction():
        new = [eventstore.NewEvent(e, json.dumps(e).encode()) for e in events]
        stored = (await eventstore.append(conn, new)).stored
    async with pool.acquire() as conn, conn.transaction():
        return await engine.apply(TRACKER, conn, [HistoryRecord(s.seq, PARTITION, s.body) for s in stored])


async def _tick(pool: asyncpg.Pool) -> Applied:
    async with pool.acquire() as conn:
        return await engine.tick(TRACKER, conn, [PARTITION], datetime.now(UTC), limit=7)


async def _tick_until_idle(pool: asyncpg.Pool) -> list[Applied]:
    done: list[Applied] = []
    while (applied := await _tick(pool)).cases:
        done.append(applied)
    return done


async def test_two_ticks_racing_fire_each_deadline_once_without_even_trying_twice(pool: asyncpg.Pool) -> None:
    cases = [unique("race") for _ in range(40)]
    await _accept_and_apply(pool, [received(c, "2026-03-02T09:15:00+00:00") for c in cases])
    results = await asyncio.gather(_tick_until_idle(pool), _tick_until_idle(pool))
    applied = [a for rounds in results for a in rounds]
    assert sum(len(a.stored) for a in applied) == 2 * len(cases)  # a warning and a breach each
    assert sum(a.duplicates for a in applied) == 0
    for case in cases:
        assert [e["type"] for e in await derived(pool, case, SOURCE)] == [
            "deadline.scheduled", "deadline.warning", "deadline.breached"]


async def test_a_tick_racing_the_consumer_fires_once_and_the_late_act_is_met_once(pool: asyncpg.Pool) -> None:
    cases = [unique("race") for _ in range(40)]
    await _accept_and_apply(pool, [received(c, "2026-03-02T09:15:00+00:00") for c in cases])
    late = [cloudevent("complaint.responded", c, "2026-03-20T10:00:00+00:00", {"stage": "stage1", "outcome": "upheld"})
            for c in cases]
    ticks, applied = await asyncio.gather(_tick_until_idle(pool), _accept_and_apply(pool, late))
    assert applied.duplicates + sum(t.duplicates for t in ticks) == 0
    for case in cases:
        assert [e["type"] for e in await derived(pool, case, SOURCE)] == [
            "deadline.scheduled", "deadline.warning", "deadline.breached", "deadline.met"]
    await _tick_until_idle(pool)
    for case in cases:  # nothing more once met
        assert len(await derived(pool, case, SOURCE)) == 4


async def test_a_malformed_history_body_is_skipped_and_the_batch_goes_on(pool: asyncpg.Pool) -> None:
    bad, good = unique("bad"), unique("race")
    broken = cloudevent("complaint.received", bad, "2026-03-02T09:15:00+00:00", {"channel": "phone"})
    applied = await _accept_and_apply(pool, [broken, received(good, "2026-03-02T09:15:00+00:00")])
    # it bypassed intake: the one judgement refuses a receipt with no stage, so it is skipped (contract 11.1)
    assert applied.refusals == []
    async with pool.acquire() as conn:
        assert bad not in await adapters.load_live_state(conn)
    assert [e["type"] for e in await derived(pool, good, SOURCE)] == ["deadline.scheduled"]


async def test_the_tick_waits_for_a_case_whose_history_is_not_all_applied(pool: asyncpg.Pool) -> None:
    case = unique("pending")
    await _accept_and_apply(pool, [received(case, "2026-03-02T09:15:00+00:00")])
    responded = cloudevent("complaint.responded", case, "2026-03-06T10:00:00+00:00",
                           {"stage": "stage1", "outcome": "upheld"})
    async with pool.acquire() as conn, conn.transaction():  # in the history, not yet applied by the worker
        stored = (await eventstore.append(conn, [eventstore.NewEvent(responded, b"{}")])).stored
    await _tick_until_idle(pool)  # due by the wall clock, but the case has an act pending
    assert [e["type"] for e in await derived(pool, case, SOURCE)] == ["deadline.scheduled"]
    async with pool.acquire() as conn, conn.transaction():
        await engine.apply(TRACKER, conn, [HistoryRecord(stored[0].seq, PARTITION, stored[0].body)])
    await _tick_until_idle(pool)
    assert [e["type"] for e in await derived(pool, case, SOURCE)] == ["deadline.scheduled", "deadline.met"]


async def test_replaying_each_case_history_through_the_domain_gives_the_live_state_and_ids(
        pool: asyncpg.Pool) -> None:
    cases = [unique("replay") for _ in range(10)]
    await _accept_and_apply(pool, [received(c, "2026-03-02T09:15:00+00:00", serious=i % 2 == 0)
                                   for i, c in enumerate(cases)])
    await _tick_until_idle(pool)  # wall-clock firings recorded before the late acts arrive
    await _accept_and_apply(pool, [cloudevent("complaint.acknowledged", c, "2026-03-04T09:00:00+00:00",
                                              {"stage": "stage2"}) for c in cases[::2]])
    book = load_book()
    async with pool.acquire() as conn:
        live = await adapters.load_live_state(conn)
        for case in cases:
            state, rederived = None, []
            history = await eventstore.subject_history(conn, case)
            for event in history:
                decision = domain.decide(state, event.body, book)
                state, rederived = decision.state, rederived + decision.derived
            assert state == live[case]
            recorded = {e.id for e in history if e.body["source"] == SOURCE}
            assert {e["id"] for e in rederived} == recorded


async def test_a_tick_never_breaches_ahead_of_an_act_committed_while_it_decides(pool: asyncpg.Pool) -> None:
    # The attack: an intake transaction has appended a response (holding the history's chain lock) but not
    # committed when the tick looks for unapplied history. A tick that looked before taking the chain lock
    # breached, and its breach landed after the response in the history: a false statutory breach.
    case = unique("commit-race")
    await _accept_and_apply(pool, [received(case, "2026-03-02T09:15:00+00:00")])
    responded = cloudevent("complaint.responded", case, "2026-03-04T10:00:00+00:00",
                           {"stage": "stage1", "outcome": "upheld"})
    async with pool.acquire() as intake, intake.transaction():
        await eventstore.append(intake, [eventstore.NewEvent(responded, b"{}")])
        ticking = asyncio.ensure_future(_tick(pool))
        await asyncio.sleep(0.5)  # the tick has found the due case and is deciding
    await ticking
    await _tick_until_idle(pool)
    assert [e["type"] for e in await derived(pool, case, SOURCE)] == ["deadline.scheduled"]


async def test_an_extension_to_year_one_is_refused_and_later_complaints_still_get_deadlines(
        pool: asyncpg.Pool) -> None:
    # The attack: a schema-valid extension whose date no calendar can count back from crashed the batch
    # (an uncaught OverflowError), so the service crash-looped on it and no later complaint got deadlines.
    case, later = unique("year-one"), unique("year-one")
    await _accept_and_apply(pool, [received(case, "2026-03-02T09:15:00+00:00")])
    async with pool.acquire() as conn:
        before = (await adapters.load_live_state(conn))[case]
    attack = cloudevent("complaint.extension_agreed", case, "2026-03-04T10:00:00+00:00",
                        {"stage": "stage1", "new_due": "0001-01-01", "reason": "x"})
    applied = await _accept_and_apply(pool, [attack, received(later, "2026-03-02T09:15:00+00:00")])
    assert applied.refusals == []  # the one judgement refuses it (intake would have): skipped, never a letter
    assert [e["type"] for e in await derived(pool, later, SOURCE)] == ["deadline.scheduled"]
    async with pool.acquire() as conn:
        assert (await adapters.load_live_state(conn))[case] == before


async def test_a_case_whose_firing_raises_is_left_and_the_tick_fires_the_others(pool: asyncpg.Pool) -> None:
    broken, fine = unique("fire-raises"), unique("fire-raises")
    failed: list[str] = []

    def fire_due(state: domain.CaseState, until: datetime) -> tuple[domain.CaseState, list[dict[str, Any]]]:
        if state.subject == broken:
            raise RuntimeError("a bug in firing")
        return domain.fire_due(state, until)

    tracker = engine.guard_firing(replace(TRACKER, fire_due=fire_due), lambda s, e: failed.append(s.subject))
    await _accept_and_apply(pool, [received(broken, "2026-03-02T09:15:00+00:00"),
                                   received(fine, "2026-03-02T09:15:00+00:00")])
    async with pool.acquire() as conn:
        before = (await adapters.load_live_state(conn))[broken]
        await engine.tick(tracker, conn, [PARTITION], datetime.now(UTC))
        assert (await adapters.load_live_state(conn))[broken] == before
    assert broken in failed
    assert [e["type"] for e in await derived(pool, fine, SOURCE)] == [
        "deadline.scheduled", "deadline.warning", "deadline.breached"]
    assert [e["type"] for e in await derived(pool, broken, SOURCE)] == ["deadline.scheduled"]


async def test_a_tick_waits_for_a_case_to_be_quiet_for_the_grace_before_breaching(pool: asyncpg.Pool) -> None:
    # Backdated acts arrive a little apart: a response dated in time may be recorded seconds after the
    # complaint. Within the grace after the case's latest recorded event, nothing is warned or breached.
    case = unique("grace")
    await _accept_and_apply(pool, [received(case, "2026-03-02T09:15:00+00:00")])
    async with pool.acquire() as conn:
        quiet = await engine.tick(TRACKER, conn, [PARTITION], datetime.now(UTC), grace=timedelta(seconds=60))
    assert quiet.stored == [] and [e["type"] for e in await derived(pool, case, SOURCE)] == ["deadline.scheduled"]
    await _accept_and_apply(pool, [cloudevent("complaint.responded", case, "2026-03-04T10:00:00+00:00",
                                              {"stage": "stage1", "outcome": "upheld"})])
    await _tick_until_idle(pool)
    assert [e["type"] for e in await derived(pool, case, SOURCE)] == ["deadline.scheduled", "deadline.met"]
