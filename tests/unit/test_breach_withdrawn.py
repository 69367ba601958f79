"""A late act corrects what it contradicts (contract 11.2), on the pure domains: a breach raised by the wall
clock before an in-time act was recorded is withdrawn, naming the breach; a declared lateness per source
delays the breach but not the warning."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.deadlines.procedure_files import load_book
from services.escalation import codec as escalation_codec
from services.escalation import domain as escalation
from services.learning import codec as learning_codec
from services.learning import domain as learning

BOOK = load_book()
N = iter(range(10**9))
DUE = "2026-03-09T23:59:59+00:00"  # stage 1's respond target for a complaint received on 2026-03-02
NIGHTLY = {"crm/east": timedelta(hours=26)}


def ev(type_: str, time: str, source: str = "crm/east", **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"w{next(N)}", "source": source, "type": type_, "subject": "case-w",
            "time": time, "data": data}


def received(source: str = "crm/east") -> dict[str, Any]:
    return ev("complaint.received", "2026-03-02T09:15:00+00:00", source, service_area="community_care",
              channel="phone", stage="stage1", serious=False, procedure="spso-mchp")


def responded(time: str) -> dict[str, Any]:
    return ev("complaint.responded", time, stage="stage1", outcome="upheld")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def escalation_after_tick(tick: str, lateness: dict[str, timedelta] | None = None
                          ) -> tuple[escalation.CaseState, list[dict[str, Any]]]:
    """The case as live holds it once the wall-clock tick at `tick` fired, with the fired events recorded."""
    decision = escalation.decide(None, received(), BOOK, lateness or {})
    assert decision.state is not None
    state, fired = escalation.fire_due(decision.state, at(tick))
    for body in fired:  # the tick's own events come back from the history
        state = escalation.decide(state, body, BOOK, lateness or {}).state
        assert state is not None
    return state, fired


def test_a_breach_then_an_in_time_response_is_met_not_late_and_withdraws_the_breach() -> None:
    state, fired = escalation_after_tick("2026-03-10T01:00:00+00:00")
    breach = next(e for e in fired if e["type"] == "deadline.breached")
    decision = escalation.decide(state, responded("2026-03-09T15:00:00+00:00"), BOOK)
    assert decision.refusal is None
    met, withdrawn = decision.derived
    assert met["type"] == "deadline.met" and met["data"]["late"] is False
    assert withdrawn["type"] == "deadline.breach_withdrawn"
    assert withdrawn["source"] == escalation.SOURCE
    assert withdrawn["data"] == {"stage": "stage1", "kind": "respond", "due": DUE, "breached_id": breach["id"],
                                 "met_at": "2026-03-09T15:00:00+00:00"}
    assert withdrawn["time"] == "2026-03-09T15:00:00+00:00"  # beside the act that withdrew it
    again = escalation.decide(state, responded("2026-03-09T15:00:00+00:00"), BOOK).derived[1]
    assert again["id"] == withdrawn["id"]  # deterministic: replay derives the same id
    assert decision.state is not None
    deadline = decision.state.deadlines[0]
    assert (deadline.status, deadline.late, deadline.breached) == ("met", False, False)
    assert escalation_codec.decode(escalation_codec.encode(decision.state)) == decision.state


def test_a_response_after_the_due_instant_withdraws_nothing() -> None:
    state, _ = escalation_after_tick("2026-03-10T01:00:00+00:00")
    decision = escalation.decide(state, responded("2026-03-10T00:30:00+00:00"), BOOK)
    assert [e["type"] for e in decision.derived] == ["deadline.met"]
    assert decision.derived[0]["data"]["late"] is True
    assert decision.state is not None and decision.state.deadlines[0].breached


def test_a_response_in_time_with_no_breach_recorded_withdraws_nothing() -> None:
    decision = escalation.decide(None, received(), BOOK)
    assert decision.state is not None
    after = escalation.decide(decision.state, responded("2026-03-09T15:00:00+00:00"), BOOK)
    assert [e["type"] for e in after.derived] == ["deadline.warning", "deadline.met"]  # warned in event time


def test_a_declared_lateness_delays_the_breach_but_not_the_warning() -> None:
    state, fired = escalation_after_tick("2026-03-10T12:00:00+00:00", NIGHTLY)
    assert [(e["type"], e["time"]) for e in fired] == [("deadline.warning", "2026-03-06T23:59:59+00:00")]
    _, later = escalation.fire_due(state, at("2026-03-11T01:59:59+00:00"))
    # the breach is raised once the lateness has passed, and says when the deadline passed
    assert [(e["type"], e["time"], e["data"]["due"]) for e in later] == [("deadline.breached", DUE, DUE)]
    assert state.deadlines[0].next_fire_at() == at("2026-03-11T01:59:59+00:00")
    assert escalation_codec.decode(escalation_codec.encode(state)) == state


def test_the_lateness_is_the_sources_of_the_complaint_received_only() -> None:
    decision = escalation.decide(None, received(source="crm/west"), BOOK, NIGHTLY)
    assert decision.state is not None
    _, fired = escalation.fire_due(decision.state, at("2026-03-10T01:00:00+00:00"))
    assert [e["type"] for e in fired] == ["deadline.warning", "deadline.breached"]


def test_a_response_dated_late_within_the_lateness_is_met_late_without_a_breach() -> None:
    state, _ = escalation_after_tick("2026-03-10T01:00:00+00:00", NIGHTLY)
    decision = escalation.decide(state, responded("2026-03-10T10:00:00+00:00"), BOOK, NIGHTLY)
    assert [(e["type"], e["data"].get("late")) for e in decision.derived] == [("deadline.met", True)]


def test_the_next_stage_keeps_the_cases_lateness() -> None:
    state, _ = escalation_after_tick("2026-03-05T01:00:00+00:00", NIGHTLY)
    state = escalation.decide(state, responded("2026-03-05T10:00:00+00:00"), BOOK, NIGHTLY).state
    escalated = escalation.decide(state, ev("complaint.escalated", "2026-03-06T10:00:00+00:00", to_stage="stage2"),
                                  BOOK, NIGHTLY).state
    assert escalated is not None
    stage2 = [d for d in escalated.deadlines if d.stage == "stage2"]
    assert stage2 and all(d.lateness == timedelta(hours=26) for d in stage2)


# --- learning: its breach is `learning.stage.overdue`, withdrawn by a plan dated on or before the due instant


def learning_after_tick(tick: str, lateness: dict[str, timedelta] | None = None
                        ) -> tuple[learning.CaseLearning, list[dict[str, Any]]]:
    state = None
    for body in (received(), ev("complaint.closed", "2026-04-01T16:00:00+01:00")):
        state = learning.decide(state, body, BOOK, lateness or {}).state
    assert state is not None
    state, fired = learning.fire_due(state, at(tick))
    for body in fired:
        state = learning.decide(state, body, BOOK, lateness or {}).state
        assert state is not None
    return state, fired


LEARNING_DUE = "2026-04-30T23:59:59+01:00"


def test_an_overdue_learning_stage_then_an_in_time_plan_withdraws_the_overdue() -> None:
    state, fired = learning_after_tick("2026-05-01T03:00:00+01:00")
    overdue = next(e for e in fired if e["type"] == "learning.stage.overdue")
    decision = learning.decide(state, ev("learning.plan.submitted", "2026-04-30T17:00:00+01:00"), BOOK)
    assert [e["type"] for e in decision.derived] == ["learning.stage.completed", "deadline.met",
                                                     "deadline.breach_withdrawn"]
    completed, met, withdrawn = decision.derived
    assert completed["data"]["late"] is False and met["data"]["late"] is False
    assert withdrawn["source"] == learning.SOURCE
    assert withdrawn["data"] == {"stage": "learning", "kind": "learning", "due": LEARNING_DUE,
                                 "breached_id": overdue["id"], "met_at": "2026-04-30T17:00:00+01:00"}
    assert decision.state is not None
    assert learning_codec.decode(learning_codec.encode(decision.state)) == decision.state


def test_a_plan_after_the_learning_due_instant_withdraws_nothing() -> None:
    state, _ = learning_after_tick("2026-05-01T03:00:00+01:00")
    decision = learning.decide(state, ev("learning.plan.submitted", "2026-05-01T09:00:00+01:00"), BOOK)
    assert [e["type"] for e in decision.derived] == ["learning.stage.completed", "deadline.met"]
    assert decision.derived[1]["data"]["late"] is True


def test_a_declared_lateness_delays_the_learning_overdue_but_not_its_warning() -> None:
    state, fired = learning_after_tick("2026-05-01T12:00:00+01:00", NIGHTLY)
    assert [e["type"] for e in fired] == ["deadline.warning"]
    _, later = learning.fire_due(state, at("2026-05-02T01:59:59+01:00"))
    assert [(e["type"], e["time"]) for e in later] == [("learning.stage.overdue", LEARNING_DUE)]
    assert learning_codec.decode(learning_codec.encode(state)) == state


# --- the report: a withdrawn breach is no miss


def test_the_report_counts_a_withdrawn_breach_as_met_in_time() -> None:
    from datetime import date

    from services.audit.report import Period, build_report
    from services.common.labels import load_labels

    first = escalation.decide(None, received(), BOOK)
    assert first.state is not None
    history = [received(), *first.derived]
    state, fired = escalation.fire_due(first.state, at("2026-03-10T01:00:00+00:00"))
    history += fired
    response = responded("2026-03-09T15:00:00+00:00")
    history += [response, *escalation.decide(state, response, BOOK).derived]
    assert history[-1]["type"] == "deadline.breach_withdrawn"
    report = build_report(history, Period(date(2026, 3, 1), date(2026, 3, 31)), BOOK, load_labels())
    assert report["complaints"]["responded_within_target_rate"] == 1.0
    without = build_report(history[:-1], Period(date(2026, 3, 1), date(2026, 3, 31)), BOOK, load_labels())
    assert without["complaints"]["responded_within_target_rate"] == 1.0  # the act's time decides, as before


# --- replay: the same decide derives the withdrawal again; the lateness must be decided with alike


def _stored(bodies: list[dict[str, Any]]) -> list[Any]:
    from services.common.eventstore import StoredEvent

    when = at("2026-12-01T00:00:00+00:00")
    return [StoredEvent(seq, str(b["id"]), str(b["subject"]), seq, str(b["type"]), when, when, b)
            for seq, b in enumerate(bodies, 1)]


def _live_history(lateness: dict[str, timedelta], tick: str, answered: str) -> list[dict[str, Any]]:
    """What live records: the complaint and its schedule, the tick's firings, then the late-arriving response."""
    first = escalation.decide(None, received(), BOOK, lateness)
    assert first.state is not None
    state, fired = escalation.fire_due(first.state, at(tick))
    response = responded(answered)
    return [received(), *first.derived, *fired, response,
            *escalation.decide(state, response, BOOK, lateness).derived]


def _replayed(projection: Any, history: list[dict[str, Any]]) -> list[Any]:
    from services.audit.rebuild import CaseRebuild

    rebuild = CaseRebuild(projection, BOOK)
    differences = [d for event in _stored(history) for d in rebuild.apply(event)]
    return differences + rebuild.finish()


def test_replay_derives_the_withdrawal_again_with_the_same_id() -> None:
    from services.escalation.projection import PROJECTION

    history = _live_history({}, "2026-03-10T01:00:00+00:00", "2026-03-09T15:00:00+00:00")
    assert history[-1]["type"] == "deadline.breach_withdrawn"
    assert _replayed(PROJECTION, history) == []


def test_replay_with_the_declared_lateness_derives_what_live_derived_and_without_it_does_not() -> None:
    from dataclasses import replace

    from services.deadlines.engine import late_decide
    from services.escalation.projection import PROJECTION

    # answered late, within the lateness: live raised no breach
    history = _live_history(NIGHTLY, "2026-03-10T01:00:00+00:00", "2026-03-10T10:00:00+00:00")
    assert "deadline.breached" not in [e["type"] for e in history]
    assert _replayed(replace(PROJECTION, decide=late_decide(PROJECTION.decide, NIGHTLY)), history) == []
    assert _replayed(PROJECTION, history)  # replay must read the same setting
