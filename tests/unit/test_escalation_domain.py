"""Escalation's pure domain: whole cases through both procedures, decided from events alone."""

from __future__ import annotations

from typing import Any

import pytest

from services.deadlines.procedure_files import load_book
from services.escalation import codec, domain
from services.escalation.domain import CaseState, decide

BOOK = load_book()
N = iter(range(10**9))


def ev(type_: str, time: str, subject: str = "case-1", **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"e{next(N)}", "source": "crm", "type": type_, "subject": subject,
            "time": time, "data": data}


def received(time: str = "2026-03-02T09:15:00+00:00", stage: str = "stage1", serious: bool = False,
             procedure: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"service_area": "community_care", "channel": "phone", "stage": stage, "serious": serious}
    if procedure:
        data["procedure"] = procedure
    return ev("complaint.received", time, **data)


def run(events: list[dict[str, Any]]) -> tuple[CaseState | None, list[dict[str, Any]], list[str]]:
    state, derived, refusals = None, [], []
    for e in events:
        d = decide(state, e, BOOK)
        state, derived = d.state, derived + d.derived
        refusals += [d.refusal] if d.refusal else []
    return state, derived, refusals


def summary(derived: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["data"]["stage"], e["data"]["kind"], e["data"]["due"][:10], e["data"].get("late"))
            for e in derived]


def test_spso_stage1_on_time() -> None:
    state, derived, _ = run([received(), ev("complaint.responded", "2026-03-06T10:00:00+00:00", stage="stage1",
                                            outcome="upheld")])
    assert summary(derived) == [("deadline.scheduled", "stage1", "respond", "2026-03-09", None),
                                ("deadline.met", "stage1", "respond", "2026-03-09", False)]
    assert state is not None and state.outcome == "upheld"


def test_spso_stage1_late_warns_and_breaches_in_event_time_before_the_late_response() -> None:
    _, derived, _ = run([received(), ev("complaint.responded", "2026-03-12T10:00:00+00:00", stage="stage1",
                                        outcome="not_upheld")])
    assert [(e["type"], e["time"]) for e in derived[1:]] == [
        ("deadline.warning", "2026-03-06T23:59:59+00:00"), ("deadline.breached", "2026-03-09T23:59:59+00:00"),
        ("deadline.met", "2026-03-12T10:00:00+00:00")]
    assert derived[-1]["data"]["late"] is True


def test_extension_moves_the_target_to_the_end_of_the_agreed_date() -> None:
    _, derived, refusals = run([
        received(), ev("complaint.extension_agreed", "2026-03-05T10:00:00+00:00", stage="stage1",
                       new_due="2026-03-16", reason="home visit"),
        ev("complaint.responded", "2026-03-12T15:30:00+00:00", stage="stage1", outcome="not_upheld")])
    assert refusals == []
    assert summary(derived)[-1] == ("deadline.met", "stage1", "respond", "2026-03-16", False)
    assert derived[-1]["data"]["due"] == "2026-03-16T23:59:59+00:00"


def test_extension_beyond_the_procedures_cap_is_refused() -> None:
    _, _, refusals = run([received(), ev("complaint.extension_agreed", "2026-03-05T10:00:00+00:00",
                                         stage="stage1", new_due="2026-04-30", reason="x")])
    assert refusals and "may be extended to at most 10 working days" in refusals[0]


def test_escalation_starts_the_next_stage_with_ack_and_respond() -> None:
    state, derived, _ = run([
        received(), ev("complaint.responded", "2026-03-06T10:00:00+00:00", stage="stage1", outcome="not_upheld"),
        ev("complaint.escalated", "2026-03-13T09:00:00+00:00", to_stage="stage2"),
        ev("complaint.acknowledged", "2026-03-16T09:00:00+00:00", stage="stage2")])
    assert summary(derived)[2:] == [("deadline.scheduled", "stage2", "acknowledge", "2026-03-18", None),
                                    ("deadline.scheduled", "stage2", "respond", "2026-04-13", None),  # no Good Friday
                                    ("deadline.met", "stage2", "acknowledge", "2026-03-18", False)]
    assert state is not None and (state.stage, state.visit) == ("stage2", 2)


def test_escalation_past_the_last_stage_is_refused_and_changes_nothing() -> None:
    state, _, refusals = run([received(serious=True),
                              ev("complaint.escalated", "2026-03-13T09:00:00+00:00", to_stage="stage2")])
    assert state is not None and state.stage == "stage2" and state.visit == 1
    assert refusals == ["complaint.escalated to_stage stage2: cannot escalate from stage2 (the last stage) to stage2: "
                        "escalation only moves to a later stage"]


def test_dundee_director_may_be_bypassed_but_level2_may_not() -> None:
    state, derived, refusals = run([
        received("2011-03-01T10:00:00+00:00", stage="level1", procedure="dundee-2011"),
        ev("complaint.escalated", "2011-03-05T10:00:00+00:00", to_stage="director"),
        ev("complaint.escalated", "2011-03-05T11:00:00+00:00", to_stage="level2"),
        ev("complaint.escalated", "2011-03-20T10:00:00+00:00", to_stage="committee")])
    assert refusals == ["complaint.escalated to_stage director: cannot escalate from level1 to director: "
                        "stage(s) ['level2'] may not be bypassed"]
    assert state is not None and state.stage == "committee"
    assert summary(derived)[-1] == ("deadline.scheduled", "committee", "respond", "2011-05-15", None)


def test_dundee_counts_calendar_days() -> None:
    _, derived, _ = run([received("2011-03-01T10:00:00+00:00", stage="level1", procedure="dundee-2011")])
    assert [e["data"]["due"] for e in derived] == ["2011-03-06T23:59:59+00:00", "2011-03-15T23:59:59+00:00"]


def test_a_serious_complaint_starts_at_the_investigation_stage() -> None:
    state, derived, _ = run([received(serious=True, stage="stage1")])
    assert state is not None and state.stage == "stage2"
    assert [e["data"]["kind"] for e in derived] == ["acknowledge", "respond"]


@pytest.mark.parametrize("ending", ["complaint.withdrawn", "complaint.closed"])
def test_withdrawn_or_closed_ends_open_deadlines_without_breach(ending: str) -> None:
    state, derived, _ = run([received(), ev(ending, "2026-03-03T09:00:00+00:00"),
                             ev("complaint.acknowledged", "2026-04-03T09:00:00+00:00", stage="stage1")])
    assert state is not None and not state.open and all(d.status == "cancelled" for d in state.deadlines)
    assert [e["type"] for e in derived] == ["deadline.scheduled"]
    assert domain.fire_due(state, state.started.replace(year=2027))[1] == []


def test_unknown_procedure_or_stage_is_refused() -> None:
    assert decide(None, received(procedure="nope"), BOOK).refusal is not None
    assert "has no stage level1" in (decide(None, received(stage="level1"), BOOK).refusal or "")


def test_mismatched_stage_is_refused_and_other_events_for_unknown_cases_skipped() -> None:
    _, _, refusals = run([received(), ev("complaint.acknowledged", "2026-03-03T09:00:00+00:00", stage="stage2")])
    assert refusals == ["complaint.acknowledged for stage stage2: the case is at stage stage1 at "
                        "2026-03-03T09:00:00+00:00"]
    d = decide(None, ev("complaint.closed", "2026-03-03T09:00:00+00:00"), BOOK)
    assert d.state is None and d.derived == [] and d.reason == "inconsistent"  # skipped, never dead-lettered


def test_replay_is_deterministic_and_recorded_firings_match_live_ticks() -> None:
    events = [received(), ev("complaint.responded", "2026-03-12T10:00:00+00:00", stage="stage1", outcome="upheld")]
    assert run(events)[1] == run(events)[1]
    # Live: the tick fired the breach (wall clock) before the acknowledgement, dated in time, arrived.
    state, first, _ = run(events[:1])
    assert state is not None
    ticked, fired = domain.fire_due(state, state.started.replace(year=2030))
    act = ev("complaint.responded", "2026-03-06T10:00:00+00:00", stage="stage1", outcome="upheld")
    live = decide(ticked, act, BOOK)
    # Replay sees the recorded firings as events, then the act: same state, same derived ids.
    replay_state, replay_derived, _ = run([events[0], *fired, act])
    assert replay_state == live.state
    assert [e["id"] for e in replay_derived] == [e["id"] for e in first + fired + live.derived]
    assert live.derived[0]["data"]["late"] is False


def test_state_json_round_trip() -> None:
    state, _, _ = run([received(), ev("complaint.responded", "2026-03-12T10:00:00+00:00", stage="stage1",
                                      outcome="upheld")])
    assert state is not None and codec.decode(codec.encode(state)) == state


def test_an_extension_to_year_one_is_refused_as_inconsistent_and_changes_nothing() -> None:
    from services.deadlines.timers import decide_safely

    state, _, _ = run([received()])
    attack = ev("complaint.extension_agreed", "2026-03-05T10:00:00+00:00", stage="stage2", new_due="0001-01-01",
                reason="x")
    attack["data"]["stage"] = "stage1"
    d = decide_safely(lambda s, b: decide(s, b, BOOK), state, attack)
    assert d.state == state and d.derived == [] and d.reason == "inconsistent"
    assert d.refusal == "complaint.extension_agreed new_due 0001-01-01: before stage stage1 started on 2026-03-02"


def test_a_complaint_received_in_year_9999_is_refused_as_inconsistent() -> None:
    d = decide(None, received("9999-12-31T12:00:00+00:00"), BOOK)
    assert d.state is None and d.reason == "inconsistent"
    assert d.refusal == "complaint.received on 9999-12-31: deadlines are counted only for dates from 1900-01-01 " \
                        "to 9000-12-31"


def test_a_raising_decide_is_refused_naming_the_exception_and_the_state_stands() -> None:
    from services.deadlines.timers import decide_safely

    state, _, _ = run([received()])

    def broken(s: object, b: object) -> domain.Decision:
        raise OverflowError("date value out of range")

    d = decide_safely(broken, state, received())
    assert (d.state, d.derived, d.reason) == (state, [], "internal")
    assert d.refusal == "complaint.received cannot be applied: OverflowError date value out of range"
    assert decide_safely(broken, None, received()).state is None


def test_an_unknown_procedure_version_is_not_refused_but_raised_for_the_worker_to_reload_documents() -> None:
    from services.deadlines.procedures import ProcedureError
    from services.deadlines.timers import decide_safely

    state, _, _ = run([received()])
    assert state is not None
    stranger = state._replace(procedure="spso-mchp@99#000000000000")
    with pytest.raises(ProcedureError):
        decide_safely(lambda s, b: decide(s, b, BOOK), stranger,
                      ev("complaint.escalated", "2026-03-13T09:00:00+00:00", to_stage="stage2"))
