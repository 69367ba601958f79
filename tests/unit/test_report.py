"""The period report's pure computation (contract section 9) over hand-made histories."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from services.audit.report import Period
from services.audit.report import build_report as build
from services.audit.report_markdown import render_markdown
from services.common.labels import load_labels
from services.deadlines.procedure_files import load_book
from services.escalation.domain import SOURCE as ESCALATION
from tests.seed2011 import EXPECTED_2011, seed_2011

BOOK, LABELS = load_book(), load_labels()


def build_report(bodies: list[dict[str, Any]], period: Period) -> dict[str, Any]:
    return build(bodies, period, BOOK, LABELS)


YEAR = Period(date(2011, 1, 1), date(2011, 12, 31))
DUNDEE_DAYS = {("level1", "acknowledge"): 5, ("level1", "respond"): 14,
               ("level2", "acknowledge"): 5, ("level2", "respond"): 28}


def ev(type_: str, subject: str, time_: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"{subject}-{type_}-{time_}", "source": "t", "type": type_,
            "subject": subject, "time": time_, "data": data}


def received(subject: str, time_: str, stage: str = "stage1", serious: bool = False, area: str = "housing",
             procedure: str = "spso-mchp", themes: list[str] | None = None) -> dict[str, Any]:
    return ev("complaint.received", subject, time_, {"service_area": area, "channel": "web", "stage": stage,
                                                    "serious": serious, "themes": themes or [],
                                                    "procedure": procedure})


def deadline(type_: str, subject: str, time_: str, stage: str, kind: str, due: str, **extra: Any) -> dict[str, Any]:
    """A deadline event as escalation derives it."""
    return ev(type_, subject, time_, {"stage": stage, "kind": kind, "due": due, **extra}) | {"source": ESCALATION}


def with_derived_deadlines(inbound: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stand-in for escalation: calendar-day deadlines at receipt, deadline.met at each act (a response
    also meets a still-open acknowledgement), a breach at the due instant of each deadline met late or not
    at all."""
    out: list[dict[str, Any]] = []
    dues: dict[tuple[str, str], str] = {}
    stages: dict[str, str] = {}
    met: set[tuple[str, str]] = set()
    for e in inbound:
        out.append(e)
        s, t = e["subject"], datetime.fromisoformat(e["time"])
        if e["type"] == "complaint.received":
            stage = stages[s] = e["data"]["stage"]
            for kind in ("acknowledge", "respond"):
                dues[(s, kind)] = (t + timedelta(days=DUNDEE_DAYS[(stage, kind)])).isoformat()
                out.append(deadline("deadline.scheduled", s, e["time"], stage, kind, dues[(s, kind)]))
        kinds = {"complaint.acknowledged": ["acknowledge"], "complaint.responded": ["acknowledge", "respond"]}
        for kind in kinds.get(e["type"], []):
            if (s, kind) in met:
                continue
            met.add((s, kind))
            due = dues[(s, kind)]
            late = t > datetime.fromisoformat(due)
            if late:
                out.append(deadline("deadline.breached", s, due, e["data"]["stage"], kind, due))
            out.append(deadline("deadline.met", s, e["time"], e["data"]["stage"], kind, due, late=late))
    return out + [deadline("deadline.breached", s, due, stages[s], kind, due)
                  for (s, kind), due in dues.items() if (s, kind) not in met]


def test_a_year_shaped_like_seed_2011_gives_the_seed_figures() -> None:
    report = build_report(with_derived_deadlines(seed_2011("u")), YEAR)
    assert report["period"] == EXPECTED_2011["period"]
    assert report["complaints"] == EXPECTED_2011["complaints"]
    assert report["compliments"]["total"] == 131
    assert sum(report["compliments"]["by_service_area"].values()) == 131
    assert report["learning"] == EXPECTED_2011["learning"]
    assert report["satisfaction"][0]["ratio"] == 0.975


def test_events_after_the_period_end_do_not_change_a_closed_period() -> None:
    history = [received("c1", "2011-12-30T10:00:00+00:00"),
               deadline("deadline.scheduled", "c1", "2011-12-30T10:00:00+00:00", "stage1", "respond",
                        "2012-01-06T23:59:59+00:00")]
    before = build_report(history, YEAR)
    later = [ev("complaint.responded", "c1", "2012-01-02T10:00:00+00:00", {"stage": "stage1", "outcome": "upheld"}),
             deadline("deadline.met", "c1", "2012-01-02T10:00:00+00:00", "stage1", "respond",
                      "2012-01-06T23:59:59+00:00", late=False),
             received("c2", "2012-01-01T00:00:00+00:00")]
    assert build_report(history + later, YEAR) == before
    assert before["complaints"]["outcomes"]["ongoing"] == 1
    assert before["complaints"]["responded_within_target_rate"] is None


def test_only_complaints_received_in_the_period_are_counted() -> None:
    history = [received("old", "2010-12-31T23:59:59+00:00"), received("new", "2011-01-01T00:00:00+00:00"),
               ev("complaint.responded", "old", "2011-02-01T10:00:00+00:00", {"stage": "stage1", "outcome": "upheld"})]
    report = build_report(history, YEAR)["complaints"]
    assert report["total"] == 1
    assert report["outcomes"]["upheld"] == 0 and report["outcomes"]["ongoing"] == 1
    assert report["upheld_rate"] is None


def test_by_stage_counts_the_highest_stage_reached_and_serious_starts_at_investigation() -> None:
    history = [received("a", "2011-03-01T10:00:00+00:00"),
               ev("complaint.escalated", "a", "2011-03-10T10:00:00+00:00", {"to_stage": "stage2"}),
               received("b", "2011-03-02T10:00:00+00:00", serious=True),
               received("c", "2011-03-03T10:00:00+00:00"),
               received("d", "2011-03-04T10:00:00+00:00", stage="level1", procedure="dundee-2011"),
               ev("complaint.escalated", "d", "2011-03-10T10:00:00+00:00", {"to_stage": "level2"}),
               ev("complaint.escalated", "d", "2011-03-20T10:00:00+00:00", {"to_stage": "committee"})]  # refused:
    # the director's review may be bypassed, the committee is after it: level2 -> committee is allowed
    assert build_report(history, YEAR)["complaints"]["by_stage"] == {"stage2": 2, "committee": 1, "stage1": 1}


def test_an_escalation_after_a_response_reopens_the_complaint_until_the_next_stage_responds() -> None:
    history = [received("a", "2011-03-01T10:00:00+00:00"),
               ev("complaint.responded", "a", "2011-03-05T10:00:00+00:00",
                  {"stage": "stage1", "outcome": "not_upheld"}),
               ev("complaint.escalated", "a", "2011-03-10T10:00:00+00:00", {"to_stage": "stage2"})]
    assert build_report(history, YEAR)["complaints"]["outcomes"]["ongoing"] == 1
    history.append(ev("complaint.responded", "a", "2011-04-01T10:00:00+00:00",
                      {"stage": "stage2", "outcome": "partially_upheld"}))
    outcomes = build_report(history, YEAR)["complaints"]["outcomes"]
    assert outcomes["partially_upheld"] == 1 and outcomes["ongoing"] == 0 and outcomes["not_upheld"] == 0


def test_timeliness_counts_each_deadline_once_met_late_or_breached_not_ended_or_running() -> None:
    """From the acts and the procedure alone (contract 11.3): no derived event is needed for a miss to count."""
    opened = "2011-06-01T10:00:00+00:00"  # spso-mchp stage 1: due 8 June, five Scottish working days later
    history = [received(s, opened) for s in ("ok", "late", "breached", "ended")]
    history += [received("running", "2011-12-29T10:00:00+00:00"),  # falls due in 2012
                ev("complaint.responded", "ok", "2011-06-07T10:00:00+00:00", {"stage": "stage1", "outcome": "upheld"}),
                ev("complaint.responded", "late", "2011-06-20T10:00:00+00:00",
                   {"stage": "stage1", "outcome": "upheld"}),
                ev("complaint.withdrawn", "ended", "2011-06-03T10:00:00+00:00", {})]  # before it fell due
    assert build_report(history, YEAR)["complaints"]["responded_within_target_rate"] == 0.333

def test_a_complaint_14_days_old_with_no_response_is_late_before_any_breach_is_derived() -> None:
    """Contract 11.3: the report does not wait for the tick; its rate is 0.0, not null."""
    history = [received("old", "2011-06-01T10:00:00+00:00")]  # spso-mchp stage 1: due 8 June; no events derived
    report = build_report(history, Period(date(2011, 6, 1), date(2011, 6, 15)))
    assert report["complaints"]["responded_within_target_rate"] == 0.0


def test_timeliness_counts_a_deadline_in_the_period_it_was_settled_in() -> None:
    """Dundee 2011 counts calendar days: respond within 14 days of receipt."""
    history = [received("dec", "2010-12-25T10:00:00+00:00", stage="level1", procedure="dundee-2011"),  # due 8 Jan
               received("early", "2010-12-21T10:00:00+00:00", stage="level1", procedure="dundee-2011"),
               ev("complaint.responded", "early", "2010-12-30T10:00:00+00:00",
                  {"stage": "level1", "outcome": "upheld"})]
    complaints = build_report(history, YEAR)["complaints"]
    assert complaints["total"] == 0  # received in 2010
    assert complaints["responded_within_target_rate"] == 0.0  # "dec" fell due in 2011 unmet; "early" met in 2010
    assert build_report(history, Period(date(2010, 1, 1), date(2010, 12, 31)))["complaints"][
        "responded_within_target_rate"] == 1.0

def test_learning_deadlines_are_not_complaint_timeliness() -> None:
    history = [received("x", "2011-06-01T10:00:00+00:00"), ev("complaint.closed", "x", "2011-06-02T10:00:00+00:00", {}),
               deadline("deadline.breached", "x", "2011-06-30T23:59:59+00:00", "learning", "learning",
                        "2011-06-30T23:59:59+00:00") | {"source": "casefeedback/learning"}]
    report = build_report(history, YEAR)
    assert report["complaints"]["responded_within_target_rate"] is None  # closed before its response fell due
    assert report["learning"]["opened"] == 1

def test_an_act_after_a_breach_but_before_an_agreed_date_counts_as_met() -> None:
    history = [received("x", "2011-06-01T10:00:00+00:00"),
               deadline("deadline.breached", "x", "2011-06-08T23:59:59+01:00", "stage1", "respond",
                        "2011-06-08T23:59:59+01:00"),  # a breach recorded of the old target: not what counts
               ev("complaint.extension_agreed", "x", "2011-06-03T10:00:00+00:00",
                  {"stage": "stage1", "new_due": "2011-06-14", "reason": "r"}),
               ev("complaint.responded", "x", "2011-06-13T10:00:00+00:00", {"stage": "stage1", "outcome": "upheld"})]
    assert build_report(history, YEAR)["complaints"]["responded_within_target_rate"] == 1.0

def test_learning_and_compliments_are_counted_by_event_time_in_the_period() -> None:
    """Learning stages opened by the period's closures, completed by its plans (on time by the stage's due)."""
    history = [received("a", "2011-05-03T10:00:00+00:00"), received("b", "2011-05-03T10:00:00+00:00"),
               ev("complaint.closed", "a", "2011-06-01T10:00:00+00:00", {}),
               ev("complaint.closed", "b", "2011-06-01T10:00:00+00:00", {}),
               ev("learning.plan.submitted", "a", "2011-06-20T10:00:00+00:00", {}),
               ev("learning.plan.submitted", "b", "2011-07-20T10:00:00+00:00", {}),  # past its 20 working days
               ev("compliment.received", "k1", "2011-02-01T10:00:00+00:00",
                  {"service_area": "community_care", "channel": "letter", "about": "staff"}),
               ev("compliment.received", "k2", "2012-02-01T10:00:00+00:00",
                  {"service_area": "community_care", "channel": "letter", "about": "staff"})]
    report = build_report(history, YEAR)
    assert report["learning"] == {"opened": 2, "completed": 2, "completed_on_time_rate": 0.5}
    assert report["compliments"] == {"total": 1, "by_service_area": {"community_care": 1}}

def test_satisfaction_is_the_share_of_positive_answers_per_question_and_respondent_type() -> None:
    questions = [{"question_id": "q1", "text": "Satisfied?", "scale": "likert5", "positive": ["4", "5"],
                  "target": 0.85, "benchmark": {"label": "Scotland", "value": 0.84}},
                 {"question_id": "q2", "text": "Respect?", "scale": "yes_no", "positive": ["yes"]}]
    history = [ev("survey.defined", "s", "2011-01-05T09:00:00+00:00", {"title": "t", "questions": questions})]
    answers = [("service_user", 5, True), ("service_user", 2, True), ("carer", "4", False)]
    history += [ev("survey.response.submitted", f"r{i}", "2011-02-01T10:00:00+00:00",
                   {"survey_id": "s", "respondent_type": rt, "answers": {"q1": a, "q2": b}})
                for i, (rt, a, b) in enumerate(answers)]
    q1, q2 = build_report(history, YEAR)["satisfaction"]
    assert (q1["responses"], q1["positive"], q1["ratio"], q1["target"]) == (3, 2, 0.667, 0.85)
    assert q1["by_respondent_type"]["service_user"] == {"responses": 2, "positive": 1, "ratio": 0.5}
    assert (q2["responses"], q2["positive"], q2["ratio"]) == (3, 2, 0.667)


def test_markdown_reads_like_the_seed_annual_report() -> None:
    report = build_report(with_derived_deadlines(seed_2011("m")), YEAR)
    text = render_markdown(report)
    assert "A total of 60 complaints, 57 Level 1, 3 Level 2, were recorded in the period." in text
    assert "25 Community care, 24 Childrens services, 9 Criminal justice, 2 General" in text
    assert "Of the 52 decided, 18 (34.6%) were upheld" in text
    assert "Investigations on 8 complaints are still ongoing." in text
    assert "Acknowledgement targets were achieved in 98.3% of cases" in text
    assert "in 90.4%." in text
    assert "The department recorded 131 compliments" in text
    assert "| 40 | 97.5% (39 of 40) | 90% (+7.5 points) | 84% (Scotland) |" in text
    assert "### Themes by service area" in text and "staff attitude" in text
    assert ("- overall (Overall, were you satisfied with the service?): carer 90% (9 of 10); "
            "service user 100% (30 of 30)") in text


def test_a_complaint_under_an_unknown_procedure_recorded_under_1_1_is_refused_and_not_counted() -> None:
    history = [received("z", "2011-03-01T10:00:00+00:00", stage="triage", procedure="local-2011"),
               ev("complaint.escalated", "z", "2011-03-10T10:00:00+00:00", {"to_stage": "panel"})]
    assert build_report(history, YEAR)["complaints"]["total"] == 0


def test_a_breach_of_the_old_target_does_not_count_once_an_extension_moved_it_past_the_period() -> None:
    """england-children-2006 stage 1 may be extended to 20 working days: 3 January 2012 from 1 December."""
    old = "2011-12-15T23:59:59+00:00"
    history = [received("x", "2011-12-01T10:00:00+00:00", procedure="england-children-2006"),
               ev("complaint.extension_agreed", "x", "2011-12-05T10:00:00+00:00",
                  {"stage": "stage1", "new_due": "2012-01-03", "reason": "r"}),
               deadline("deadline.breached", "x", old, "stage1", "respond", old)]
    assert build_report(history, YEAR)["complaints"]["responded_within_target_rate"] is None

def test_learning_actions_by_service_area_count_the_periods_actions_by_level() -> None:
    def action(type_: str, subject: str, time_: str, action_id: str, level: str | None = None) -> dict[str, Any]:
        data = {"action_id": action_id} | ({"level": level, "description": "d"} if level else {})
        return ev(type_, subject, time_, data)

    history = [
        received("c1", "2010-11-01T09:00:00+00:00", area="community_care"),
        ev("complaint.closed", "c1", "2010-12-01T09:00:00+00:00", {}),  # learning acts belong after closure
        action("learning.action.added", "c1", "2010-12-20T09:00:00+00:00", "before", "local"),  # before the period
        received("c2", "2011-02-01T09:00:00+00:00", area="childrens_services"),
        ev("complaint.closed", "c2", "2011-02-15T09:00:00+00:00", {}),
        action("learning.action.added", "c1", "2011-01-10T09:00:00+00:00", "a1", "local"),
        action("learning.action.completed", "c1", "2011-01-20T09:00:00+00:00", "a1"),
        action("learning.action.added", "c2", "2011-03-01T09:00:00+00:00", "a2", "systemic"),
        action("learning.action.added", "c2", "2012-01-05T09:00:00+00:00", "after", "individual"),  # after it
    ]
    report = build_report(history, YEAR)
    assert report["learning_actions"] == {"childrens_services": {"systemic.opened": 1},
                                          "community_care": {"local.completed": 1, "local.opened": 1}}
    text = render_markdown(report)
    assert "### Learning actions by service area" in text
    assert "- Community care: local completed (1), local opened (1)" in text
