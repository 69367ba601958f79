"""Learning's pure domain: a stage per closure, its plan's actions, its 20-working-day deadline."""

from __future__ import annotations

from typing import Any

from services.deadlines.procedure_files import load_book
from services.learning import codec, domain
from services.learning.domain import CaseLearning, decide

BOOK = load_book()
N = iter(range(10**9))


def ev(type_: str, time: str, subject: str = "case-1", **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"e{next(N)}", "source": "crm", "type": type_, "subject": subject,
            "time": time, "data": data}


RECEIVED = ev("complaint.received", "2026-03-02T09:15:00+00:00", service_area="community_care", channel="phone",
              stage="stage1", serious=False, themes=["staff_attitude"])
CLOSED = ev("complaint.closed", "2026-04-01T16:00:00+00:00")


def run(events: list[dict[str, Any]]) -> tuple[CaseLearning | None, list[dict[str, Any]]]:
    state, derived = None, []
    for e in events:
        d = decide(state, e, BOOK)
        assert d.refusal is None or d.reason != "internal"  # acts the one judgement refuses are skipped
        state, derived = d.state, derived + d.derived
    return state, derived


def kinds(derived: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["time"]) for e in derived]


def test_closure_opens_a_stage_due_in_20_scottish_working_days() -> None:
    state, derived = run([RECEIVED, CLOSED])
    assert [e["type"] for e in derived] == ["learning.stage.opened", "deadline.scheduled"]
    assert derived[0]["data"] == {"due": "2026-04-30T23:59:59+01:00"}
    assert derived[1]["data"] == {"stage": "learning", "kind": "learning", "due": "2026-04-30T23:59:59+01:00"}
    assert state is not None and state.open_stage() is not None


def test_plan_on_time_with_actions_by_level() -> None:
    state, derived = run([
        RECEIVED, CLOSED,
        ev("learning.action.added", "2026-04-02T10:00:00+01:00", action_id="a1", level="local", description="x"),
        ev("learning.action.added", "2026-04-02T10:05:00+01:00", action_id="a2", level="systemic", description="y"),
        ev("learning.action.completed", "2026-04-10T10:00:00+01:00", action_id="a1"),
        ev("learning.plan.submitted", "2026-04-14T10:00:00+01:00")])
    assert derived[-2]["type"] == "learning.stage.completed"
    assert derived[-2]["data"] == {"due": "2026-04-30T23:59:59+01:00", "late": False}
    assert derived[-1]["type"] == "deadline.met" and derived[-1]["data"]["late"] is False
    assert state is not None and state.stages[0].incomplete_actions == 1  # recorded, still allowed
    assert [(a.action_id, a.level, a.completed) for a in state.stages[0].actions] == [
        ("a1", "local", True), ("a2", "systemic", False)]


def test_late_plan_is_warned_overdue_then_completed_late() -> None:
    _, derived = run([RECEIVED, CLOSED, ev("learning.plan.submitted", "2026-05-05T10:00:00+01:00")])
    assert kinds(derived)[2:] == [("deadline.warning", "2026-04-29T23:59:59+01:00"),
                                  ("learning.stage.overdue", "2026-04-30T23:59:59+01:00"),
                                  ("learning.stage.completed", "2026-05-05T10:00:00+01:00"),
                                  ("deadline.met", "2026-05-05T10:00:00+01:00")]
    assert derived[3]["data"] == {"due": "2026-04-30T23:59:59+01:00"}
    assert derived[4]["data"]["late"] is True


def test_never_submitted_fires_once_however_often_ticked() -> None:
    state, _ = run([RECEIVED, CLOSED])
    assert state is not None
    fired = []
    for month in (4, 5, 6, 7):
        state, out = domain.fire_due(state, state.stages[0].opened.replace(month=month, day=30))
        fired += out
    assert [e["type"] for e in fired] == ["deadline.warning", "learning.stage.overdue"]


def test_reopened_complaint_opens_a_new_stage_and_keeps_the_first() -> None:
    state, derived = run([
        RECEIVED, ev("complaint.responded", "2026-04-01T15:00:00+00:00", stage="stage1", outcome="not_upheld"),
        CLOSED, ev("learning.plan.submitted", "2026-04-14T10:00:00+01:00"),
        ev("complaint.escalated", "2026-04-20T10:00:00+01:00", to_stage="stage2"),
        ev("complaint.closed", "2026-06-01T10:00:00+01:00"),
        ev("complaint.closed", "2026-06-02T10:00:00+01:00")])  # a repeated closure opens nothing
    opened = [e for e in derived if e["type"] == "learning.stage.opened"]
    assert len(opened) == 2 and opened[0]["id"] != opened[1]["id"]
    assert state is not None and len(state.stages) == 2
    assert state.stages[0].submitted is not None and state.stages[1].is_open


def test_an_action_dated_before_the_closure_is_skipped_as_the_judgement_refuses_it() -> None:
    """Learning acts belong after closure (contract 11.1): one recorded under 1.1 before it is skipped, not held."""
    action = ev("learning.action.added", "2026-03-30T10:00:00+01:00", action_id="a1", level="individual",
                description="x")
    state = run([RECEIVED, action, CLOSED])[0]
    assert state is not None and state.held == () and state.stages[0].actions == ()
    d = domain.decide(run([RECEIVED])[0], action, BOOK)
    assert d.reason == "not_allowed" and "no open learning stage" in (d.refusal or "")


def test_dundee_learning_counts_working_days_though_its_complaints_count_calendar_days() -> None:
    received = ev("complaint.received", "2011-03-01T10:00:00+00:00", service_area="general", channel="letter",
                  stage="level1", serious=False, procedure="dundee-2011")
    _, derived = run([received, ev("complaint.closed", "2011-03-10T10:00:00+00:00")])
    assert derived[0]["data"]["due"] == "2011-04-07T23:59:59+01:00"


def test_replay_gives_the_same_state_and_ids() -> None:
    events = [RECEIVED, CLOSED, ev("learning.plan.submitted", "2026-05-05T10:00:00+01:00")]
    first, second = run(events), run(events)
    assert first == second
    assert first[0] is not None and codec.decode(codec.encode(first[0])) == first[0]


def test_patterns_count_themes_and_actions_by_service_area() -> None:
    from services.common.labels import load_labels
    from services.learning.patterns import patterns

    other = ev("complaint.received", "2026-03-02T09:15:00+00:00", subject="case-2", service_area="housing",
               channel="web", stage="stage1", serious=False, themes=["delay", "delay", "staff_attitude"])
    result = patterns([
        RECEIVED, other,
        ev("learning.action.added", "2026-04-02T10:00:00+01:00", action_id="a1", level="local", description="x"),
        ev("learning.action.added", "2026-04-02T10:00:00+01:00", action_id="a1", level="local", description="x"),
        ev("learning.action.completed", "2026-04-03T10:00:00+01:00", action_id="a1"),
        ev("learning.action.completed", "2026-04-03T10:00:00+01:00", subject="case-2", action_id="zz")],
        load_labels())
    assert result == {"themes": {"community_care": {"staff_attitude": 1}, "housing": {"delay": 1, "staff_attitude": 1}},
                      "learning_actions": {"community_care": {"local.completed": 1, "local.opened": 1}}}


def test_a_closure_in_year_9999_is_refused_as_inconsistent_and_the_case_stands() -> None:
    state, _ = run([RECEIVED])
    d = decide(state, ev("complaint.closed", "9999-12-31T23:00:00+00:00"), BOOK)
    assert (d.state, d.derived, d.reason) == (state, [], "inconsistent")
    assert d.refusal == ("complaint.closed on 9999-12-31: deadlines are counted only for dates from 1900-01-01 "
                         "to 9000-12-31")
