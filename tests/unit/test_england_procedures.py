"""England's two statutory procedures as data (months, agreed periods, England's calendar) and clock stops."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import pytest

from services.deadlines.calendar import add_months
from services.deadlines.procedure_files import load_book
from services.deadlines.procedures import ProcedureError, parse_procedure
from services.escalation import codec, domain
from services.escalation.domain import CaseState, decide

BOOK = load_book()
N = iter(range(10**9))


def ev(type_: str, time: str, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"e{next(N)}", "source": "crm", "type": type_, "subject": "case-1",
            "time": time, "data": data}


def received(procedure: str, time: str = "2026-03-02T09:15:00+00:00", stage: str = "stage1") -> dict[str, Any]:
    return ev("complaint.received", time, service_area="childrens_services", channel="phone", stage=stage,
              serious=False, procedure=procedure)


def run(events: list[dict[str, Any]]) -> tuple[CaseState | None, list[dict[str, Any]], list[tuple[str, str]]]:
    state, derived, refusals = None, [], []
    for e in events:
        d = decide(state, e, BOOK)
        state, derived = d.state, derived + d.derived
        refusals += [(d.reason, d.refusal)] if d.refusal else []
    return state, derived, refusals


def summary(derived: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["data"]["kind"], e["data"]["due"][:10], e["data"].get("late")) for e in derived]


def test_adult_social_care_acknowledges_in_3_working_days_and_responds_in_6_calendar_months() -> None:
    _, derived, _ = run([received("england-asc-2009", stage="local")])
    assert [(e["data"]["kind"], e["data"]["due"]) for e in derived] == [
        ("acknowledge", "2026-03-05T23:59:59+00:00"), ("respond", "2026-09-02T23:59:59+01:00")]


def test_a_period_of_months_ends_on_the_same_day_or_the_shorter_months_last() -> None:
    assert add_months(date(2025, 8, 31), 6) == date(2026, 2, 28)
    assert add_months(date(2023, 8, 31), 6) == date(2024, 2, 29)
    assert add_months(date(2026, 7, 15), 6) == date(2027, 1, 15)


def test_adult_social_care_period_agreed_with_the_complainant_replaces_the_six_months_uncapped() -> None:
    _, derived, refusals = run([received("england-asc-2009", stage="local"),
                                ev("complaint.extension_agreed", "2026-03-04T10:00:00+00:00", stage="local",
                                   new_due="2026-11-30", reason="agreed at the first meeting"),
                                ev("complaint.responded", "2026-11-20T10:00:00+00:00", stage="local",
                                   outcome="resolved")])
    assert refusals == []
    assert summary(derived)[2:] == [("deadline.scheduled", "respond", "2026-11-30", None),
                                    ("deadline.breached", "acknowledge", "2026-03-05", None),
                                    ("deadline.met", "acknowledge", "2026-03-05", True),
                                    ("deadline.met", "respond", "2026-11-30", False)]


def test_childrens_stage1_counts_england_working_days_skipping_good_friday_and_easter_monday() -> None:
    # Easter Monday 2026-04-06 is a bank holiday in England, not in Scotland: the due date shows which calendar.
    _, derived, _ = run([received("england-children-2006", time="2026-03-30T09:00:00+01:00")])
    assert summary(derived) == [("deadline.scheduled", "respond", "2026-04-15", None)]


def test_childrens_stages_two_and_three_and_their_extension_caps() -> None:
    _, derived, refusals = run([
        received("england-children-2006", time="2026-03-02T09:15:00+00:00", stage="stage2"),
        ev("complaint.extension_agreed", "2026-03-20T10:00:00+00:00", stage="stage2", new_due="2026-07-01",
           reason="complex investigation")])
    assert summary(derived)[0] == ("deadline.scheduled", "respond", "2026-04-08", None)
    assert len(refusals) == 1 and "at most 65 working days" in refusals[0][1]
    _, derived, refusals = run([received("england-children-2006"),
                                ev("complaint.escalated", "2026-03-03T10:00:00+00:00", to_stage="stage2"),
                                ev("complaint.escalated", "2026-03-04T10:00:00+00:00", to_stage="stage3")])
    assert refusals == []
    assert summary(derived)[-1] == ("deadline.scheduled", "respond", "2026-04-17", None)  # panel within 30 days


def test_suspension_moves_the_deadline_by_the_working_days_it_stood_still() -> None:
    state, derived, refusals = run([
        received("england-children-2006"),
        ev("complaint.suspended", "2026-03-03T09:00:00+00:00", stage="stage1", reason="advocate_appointment"),
        ev("complaint.resumed", "2026-03-06T09:00:00+00:00", stage="stage1")])
    assert refusals == []
    assert summary(derived) == [("deadline.scheduled", "respond", "2026-03-16", None),
                                ("deadline.scheduled", "respond", "2026-03-19", None)]
    assert derived[1]["time"] == "2026-03-06T09:00:00+00:00" and derived[1]["id"] != derived[0]["id"]
    assert state is not None and state.suspended is None


def test_no_warning_or_breach_while_suspended_and_the_response_meets_the_moved_deadline() -> None:
    _, derived, _ = run([
        received("england-children-2006"),
        ev("complaint.suspended", "2026-03-10T09:00:00+00:00", stage="stage1", reason="advocate_appointment"),
        ev("complaint.resumed", "2026-03-25T09:00:00+00:00", stage="stage1"),
        ev("complaint.responded", "2026-03-26T09:00:00+00:00", stage="stage1", outcome="upheld")])
    assert summary(derived) == [("deadline.scheduled", "respond", "2026-03-16", None),
                                ("deadline.scheduled", "respond", "2026-03-31", None),
                                ("deadline.met", "respond", "2026-03-31", False)]


def test_a_suspended_case_fires_nothing_however_late_the_tick() -> None:
    state, _, _ = run([received("england-children-2006"),
                       ev("complaint.suspended", "2026-03-03T09:00:00+00:00", stage="stage1",
                          reason="advocate_appointment")])
    assert state is not None
    assert domain.fire_due(state, datetime(2027, 1, 1, tzinfo=timezone.utc)) == (state, [])
    assert all(d.next_fire_at() is None for d in state.deadlines)  # nothing in the timer index
    assert codec.decode(codec.encode(state)) == state


def test_a_response_while_suspended_restarts_the_clock_first() -> None:
    _, derived, _ = run([
        received("england-children-2006"),
        ev("complaint.suspended", "2026-03-03T09:00:00+00:00", stage="stage1", reason="advocate_appointment"),
        ev("complaint.responded", "2026-03-20T09:00:00+00:00", stage="stage1", outcome="not_upheld")])
    # stopped 13 working days (4 to 20 March): 16 March moves to 2 April
    assert summary(derived)[1:] == [("deadline.scheduled", "respond", "2026-04-02", None),
                                    ("deadline.met", "respond", "2026-04-02", False)]
    assert derived[-1]["data"]["late"] is False


@pytest.mark.parametrize(("procedure", "stage", "reason"), [
    ("spso-mchp", "stage1", "advocate_appointment"),
    ("england-children-2006", "stage2", "advocate_appointment"),
    ("england-children-2006", "stage1", "holiday"),
])
def test_suspension_where_the_procedure_does_not_allow_it_is_not_allowed(procedure: str, stage: str,
                                                                          reason: str) -> None:
    state, derived, refusals = run([
        received(procedure, stage=stage),
        ev("complaint.suspended", "2026-03-03T09:00:00+00:00", stage=stage, reason=reason)])
    assert [r for r, _ in refusals] == ["not_allowed"] and "may not be suspended" in refusals[0][1]
    assert state is not None and state.suspended is None


def test_resuming_what_is_not_suspended_is_not_allowed_even_when_dated_before_a_suspension() -> None:
    _, _, refusals = run([received("england-children-2006"),
                          ev("complaint.resumed", "2026-03-04T09:00:00+00:00", stage="stage1")])
    assert refusals == [("not_allowed", "complaint.resumed: stage stage1 is not suspended")]
    _, _, refusals = run([
        received("england-children-2006"),
        ev("complaint.suspended", "2026-03-05T09:00:00+00:00", stage="stage1", reason="advocate_appointment"),
        ev("complaint.resumed", "2026-03-04T09:00:00+00:00", stage="stage1")])
    assert [r for r, _ in refusals] == ["not_allowed"]  # dated before the suspension: nothing was suspended then


def test_procedure_format_refuses_two_respond_periods_and_a_cap_on_an_agreed_one() -> None:
    base = {"id": "x", "version": 1, "title": "X", "calendar": {"type": "working_days", "region": "ENG"},
            "warning_lead": 1, "serious_stage": "s", "learning": {"days": 20}}
    with pytest.raises(ProcedureError, match="respond_months, not both"):
        parse_procedure({**base, "stages": [{"id": "s", "name": "S", "respond": 5, "respond_months": 6}]}, "x.yaml")
    with pytest.raises(ProcedureError, match="no max_extension"):
        parse_procedure({**base, "stages": [{"id": "s", "name": "S", "respond_months": 6, "respond_agreed": True,
                                             "max_extension": 10}]}, "x.yaml")
    with pytest.raises(ProcedureError, match="whole number of days"):
        parse_procedure({**base, "stages": [{"id": "s", "name": "S", "respond_months": "6m"}]}, "x.yaml")
