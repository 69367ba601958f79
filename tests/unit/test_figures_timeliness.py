"""The shared definitions of timeliness, latest outcomes and windows (`services/common/figures.py`), and
that the report and escalation's gauges, both built on them, give the same figures for the same history."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.audit.report import Period, build_report
from services.common import figures
from services.common.figures import Settled, settled
from services.common.labels import load_labels
from services.deadlines.procedure_files import load_book
from services.escalation import domain
from services.escalation.domain import CaseState

BOOK, LABELS = load_book(), load_labels()
DUE = datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC)
NOW = datetime(2026, 6, 15, 14, 30, tzinfo=UTC)


def test_a_deadline_met_on_or_before_its_target_counts_when_met_as_met() -> None:
    early = DUE - timedelta(days=3)
    assert settled(DUE, early, False) == Settled(early, True)
    assert settled(DUE, DUE, False) == Settled(DUE, True)


def test_a_deadline_met_late_or_breached_counts_when_it_fell_due_as_missed() -> None:
    assert settled(DUE, DUE + timedelta(seconds=1), True) == Settled(DUE, False)
    assert settled(DUE, DUE + timedelta(days=9), False) == Settled(DUE, False)  # late even without a breach
    assert settled(DUE, None, True) == Settled(DUE, False)  # never met (still open, or ended after it fell due)


def test_a_deadline_running_or_ended_before_it_fell_due_is_not_counted() -> None:
    assert settled(DUE, None, False) is None


def test_a_window_is_whole_days_ending_today() -> None:
    assert figures.window_start(NOW, 30) == datetime(2026, 5, 17, tzinfo=UTC)  # the report's --from
    assert figures.windows_holding(datetime(2026, 5, 17, tzinfo=UTC), NOW) == ["30d", "90d", "365d"]
    assert figures.windows_holding(datetime(2026, 5, 16, 23, 59, 59, tzinfo=UTC), NOW) == ["90d", "365d"]
    assert figures.windows_holding(NOW + timedelta(seconds=1), NOW) == []


def test_the_latest_outcome_is_ongoing_without_one_and_other_for_an_unknown_value() -> None:
    assert [figures.latest_outcome(o) for o in (None, "partially_upheld", "dismissed")] == [
        "ongoing", "partially_upheld", "other"]


def test_the_upheld_rate_query_divides_upheld_by_every_decided_outcome() -> None:
    expr = figures.promql_upheld_rate("m", "365d")
    assert expr == ('sum(m{window="365d",outcome=~"upheld"}) / '
                    'sum(m{window="365d",outcome=~"upheld|partially_upheld|not_upheld|resolved"})')
    assert figures.upheld_rate({"upheld": 1, "partially_upheld": 1, "not_upheld": 1, "resolved": 1,
                                "ongoing": 5}) == 0.25


# --- the report and escalation's gauges over one history -------------------------------------------------

def _ev(type_: str, subject: str, at: datetime, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"{subject}-{type_}-{at.isoformat()}", "source": "crm", "type": type_,
            "subject": subject, "time": at.isoformat(), "data": data}


def _received(subject: str, at: datetime, procedure: str = "spso-mchp", stage: str = "stage1") -> dict[str, Any]:
    return _ev("complaint.received", subject, at, service_area="housing", channel="web", stage=stage,
               serious=False, procedure=procedure)


def _inbound() -> list[dict[str, Any]]:
    t = datetime(2026, 1, 5, 10, tzinfo=UTC)
    d = t + timedelta(days=40)
    return [
        _received("esc", t), _ev("complaint.responded", "esc", t + timedelta(days=2), stage="stage1",
                                 outcome="not_upheld"),
        _ev("complaint.escalated", "esc", t + timedelta(days=6), to_stage="stage2"),
        _ev("complaint.acknowledged", "esc", t + timedelta(days=7), stage="stage2"),
        _received("ext", t), _ev("complaint.extension_agreed", "ext", t + timedelta(days=10), stage="stage1",
                                 new_due="2026-01-16", reason="agreed after the target"),
        _ev("complaint.responded", "ext", t + timedelta(days=10, hours=2), stage="stage1", outcome="upheld"),
        _received("lvl", d, "dundee-2011", "level1"),
        _ev("complaint.acknowledged", "lvl", d + timedelta(days=7), stage="level1"),
        _ev("complaint.responded", "lvl", d + timedelta(days=9), stage="level1", outcome="partially_upheld"),
        _received("gone", d), _ev("complaint.withdrawn", "gone", d + timedelta(days=1)),
        _received("silent", d + timedelta(days=30)),
    ]


def _history() -> tuple[list[dict[str, Any]], dict[str, CaseState]]:
    """The inbound events with what escalation derives from them (as `decide` and the tick do), and its states."""
    history, states = [], {}
    for body in _inbound():
        decision = domain.decide(states.get(body["subject"]), body, BOOK)
        assert decision.refusal is None, decision.refusal
        states[body["subject"]] = decision.state
        history += [body, *decision.derived]
    for subject, state in states.items():
        states[subject], fired = domain.fire_due(state, NOW)
        history += fired
    return sorted(history, key=lambda b: b["time"]), states


def _gauges(states: dict[str, CaseState]) -> dict[tuple[str, str], list[int]]:
    """Escalation's timeliness gauges summed over stages: (kind, window) -> [counted, met]."""
    sums: dict[tuple[str, str], list[int]] = {}
    for state in states.values():
        for d in state.deadlines:
            done = settled(d.due, d.met_at, d.breached)
            for window in figures.windows_holding(done.at, NOW) if done else ():
                counts = sums.setdefault((d.kind, window), [0, 0])
                counts[0] += 1
                counts[1] += done.met
    return sums


def test_the_report_and_the_timeliness_gauges_agree_for_every_window() -> None:
    history, states = _history()
    gauges = _gauges(states)
    assert any(d.status == "cancelled" for d in states["gone"].deadlines)
    for window, days in figures.WINDOW_DAYS.items():
        period = Period(NOW.date() - timedelta(days=days - 1), NOW.date())
        complaints = build_report(history, period, BOOK, LABELS)["complaints"]
        for kind, field in (("acknowledge", "acknowledged_within_target_rate"),
                            ("respond", "responded_within_target_rate")):
            counted, met = gauges.get((kind, window), [0, 0])
            assert complaints[field] == figures.rate(met, counted), (window, kind)
    # met: esc at stage 1, ext (by the agreed date), lvl; breached: esc at stage 2, silent; gone ended before due
    assert gauges[("respond", "365d")] == [5, 3]


def test_the_report_and_the_outcome_gauge_agree_on_the_upheld_rate() -> None:
    history, states = _history()
    received = {b["subject"]: datetime.fromisoformat(b["time"]) for b in history if b["type"] == "complaint.received"}
    for window, days in figures.WINDOW_DAYS.items():
        outcomes = Counter(figures.latest_outcome(s.outcome, s.status) for subject, s in states.items()
                           if window in figures.windows_holding(received[subject], NOW))
        period = Period(NOW.date() - timedelta(days=days - 1), NOW.date())
        complaints = build_report(history, period, BOOK, LABELS)["complaints"]
        assert complaints["upheld_rate"] == figures.upheld_rate(outcomes), window
        assert complaints["outcomes"] == {o: outcomes[o] for o in figures.LATEST_OUTCOMES}, window
    assert states["esc"].outcome is None  # escalated after its response: ongoing again


def test_the_periods_compared_are_the_windows() -> None:
    assert Period(date(2026, 5, 17), NOW.date()).first_instant == figures.window_start(NOW, 30)
