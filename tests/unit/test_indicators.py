"""The SPSO complaints performance indicators (contract section 10) from histories shaped like published years."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from services.audit.indicators import BUCKETS, build_indicators
from services.audit.indicators_page import render_indicators_markdown
from services.audit.report import Period, build_report
from services.common.figures import OUTCOMES
from services.common.settings import load_settings
from services.deadlines.calendar import add_working_days
from services.deadlines.procedure_files import load_book

BOOK = load_book()


class History:
    """Builds a history of spso-mchp complaints, event by event."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, type_: str, subject: str, at: datetime, **data: Any) -> None:
        self.events.append({"specversion": "1.0", "id": f"e{len(self.events)}", "source": "crm", "type": type_,
                            "subject": subject, "time": at.isoformat(), "data": data})

    def received(self, subject: str, at: datetime, stage: str = "stage1", serious: bool = False) -> None:
        self.add("complaint.received", subject, at, service_area="general", channel="phone", stage=stage,
                 serious=serious, procedure="spso-mchp")

    def responded(self, subject: str, at: datetime, stage: str, outcome: str) -> None:
        self.add("complaint.responded", subject, at, stage=stage, outcome=outcome)

    def ordered(self) -> list[dict[str, Any]]:
        return sorted(self.events, key=lambda e: e["time"])


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), timezone.utc)


def fife_2016_17() -> list[dict[str, Any]]:
    """2,626 received; 2,149 closed: 1,648 at stage 1 (558 upheld, 784 not, 306 partially), 385 at stage 2
    directly, 116 after escalation; the other 477 still open at the year's end."""
    h = History()
    outcomes = ["upheld"] * 558 + ["not_upheld"] * 784 + ["partially_upheld"] * 306
    for i in range(2626):
        subject, day = f"fife-{i}", date(2016, 4, 4) + timedelta(days=i * 300 // 2626)
        serious = 1648 <= i < 1648 + 385
        h.received(subject, at(day), serious=serious)
        if i < 1648:
            h.responded(subject, at(add_working_days(day, 3, "SCT"), 15), "stage1", outcomes[i])
        elif serious:
            h.responded(subject, at(add_working_days(day, 15, "SCT"), 15), "stage2", "not_upheld")
        elif i < 2149:
            h.responded(subject, at(add_working_days(day, 4, "SCT"), 15), "stage1", "not_upheld")
            h.add("complaint.escalated", subject, at(add_working_days(day, 6, "SCT")), to_stage="stage2")
            h.responded(subject, at(add_working_days(day, 24, "SCT"), 15), "stage2", "upheld")
    return h.ordered()


def test_reproduces_fife_councils_published_indicators_for_2016_17() -> None:
    """Fife Council, "SPSO - Complaints Performance Indicators 16/17", indicators 1a to 3 (stage 1), as
    published at https://fife-cycleways.co.uk/topics/index.cfm?fuseaction=page.display&p2sid=7805E2B6-B931-3B79-87E909E160FF19F1&themeid=2B892409-722D-4F61-B1CC-7DE81CC06A90
    (a mirror of fifedirect.org.uk): 2,626 received, population 367,260 (7.2 per 1,000); 2,149 closed
    (5.9); 1,648 at stage 1 (76.7%), 385 at stage 2 (17.9%), 116 after escalation (5.4%); at stage 1
    558 upheld (33.9%), 784 not upheld (47.6%), 306 partially upheld.
    """
    ind = build_indicators(fife_2016_17(), Period(date(2016, 4, 1), date(2017, 3, 31)), BOOK, population=367_260)
    assert ind["received"] == {"total": 2626, "per_1000": 7.2}
    assert ind["closed"] == {"total": 2149, "per_1000": 5.9, "stage1": {"count": 1648, "share": 0.767},
                             "stage2": {"count": 385, "share": 0.179}, "escalated": {"count": 116, "share": 0.054}}
    stage1 = ind["outcomes"]["stage1"]
    assert (stage1["upheld"], stage1["not_upheld"]) == ({"count": 558, "share": 0.339},
                                                        {"count": 784, "share": 0.476})
    assert stage1["partially_upheld"]["count"] == 306 and stage1["resolved"]["count"] == 0
    assert ind["average_working_days"] == {"stage1": 3.0, "stage2": 15.0, "escalated": 18.0}
    assert ind["within_timescale"]["escalated"] == {"count": 116, "share": 1.0}
    markdown = render_indicators_markdown(ind)
    assert "| 2a | closed at stage 1, of all closed | 76.7% (1,648 of 2,149) |" in markdown
    assert "| 1a | complaints received per 1,000 population | 7.2 (2,626 per 367,260 population) |" in markdown


def east_lothian_2019_q1() -> list[dict[str, Any]]:
    """181 complaints closed at stage one in the quarter: 31 upheld, 36 partially upheld, 108 not upheld (the
    other 6 have no published outcome; here they are resolved); 105 within 5 working days (at 4), the other
    76 at 8 or 9 working days, an average of 6."""
    h = History()
    outcomes = ["upheld"] * 31 + ["partially_upheld"] * 36 + ["not_upheld"] * 108 + ["resolved"] * 6
    days = [4] * 105 + [9] * 58 + [8] * 18
    for i in range(181):
        subject, day = f"el-{i}", date(2019, 4, 1) + timedelta(days=i * 70 // 181)
        h.received(subject, at(day))
        h.responded(subject, at(add_working_days(day, days[i], "SCT"), 16), "stage1", outcomes[i])
    return h.ordered()


def test_reproduces_east_lothians_published_stage_one_figures_for_april_to_june_2019() -> None:
    """East Lothian Council, "Our complaints performance 2019-20 - Quarter 1" (1 April to 30 June 2019),
    https://eastlothian.gov.uk/info/210560/your_council/12457/complaints_performance/2 : stage one 181
    closed, upheld 31 (17%), partially upheld 36 (20%), not upheld 108 (60%); 105 (58%) closed within 5
    working days; average 6 working days. (Its stage two figures do not add up: 2 + 6 + 13 outcomes of 20.)
    """
    ind = build_indicators(east_lothian_2019_q1(), Period(date(2019, 4, 1), date(2019, 6, 30)), BOOK)
    assert ind["closed"]["stage1"]["count"] == 181
    published = {"upheld": (31, 17), "partially_upheld": (36, 20), "not_upheld": (108, 60)}
    for outcome, (count, pct) in published.items():
        cell = ind["outcomes"]["stage1"][outcome]
        assert cell["count"] == count and round(cell["share"] * 100) == pct
    assert ind["within_timescale"]["stage1"]["count"] == 105
    assert round(ind["within_timescale"]["stage1"]["share"] * 100) == 58
    assert round(ind["average_working_days"]["stage1"]) == 6
    assert ind["received"]["per_1000"] is None and ind["population"] is None


def test_working_days_skip_scottish_holidays_and_count_from_the_day_after_receipt() -> None:
    h = History()
    h.received("c1", datetime(2026, 12, 24, 9, tzinfo=timezone.utc))  # Thursday before Christmas
    h.responded("c1", datetime(2027, 1, 5, 9, tzinfo=timezone.utc), "stage1", "upheld")
    ind = build_indicators(h.ordered(), Period(date(2026, 12, 1), date(2027, 1, 31)), BOOK)
    # 29, 30, 31 December and 5 January: 25, 28 December and 1, 4 January are Scottish holidays
    assert ind["average_working_days"]["stage1"] == 4.0
    assert ind["within_timescale"]["stage1"] == {"count": 1, "share": 1.0}


def test_closed_means_the_last_response_and_extensions_count_at_the_closing_stage() -> None:
    h = History()
    h.received("a", at(date(2026, 3, 2)))
    h.add("complaint.extension_agreed", "a", at(date(2026, 3, 5)), stage="stage1", new_due="2026-03-13",
          reason="agreed")
    h.responded("a", at(date(2026, 3, 12)), "stage1", "resolved")  # 8 working days: extended, not within 5
    h.received("b", at(date(2026, 3, 2)))
    h.responded("b", at(date(2026, 3, 4)), "stage1", "not_upheld")
    h.add("complaint.escalated", "b", at(date(2026, 3, 6)), to_stage="stage2")  # not closed: stage 2 open
    h.received("c", at(date(2026, 2, 2)))  # received before the period, closed in it
    h.responded("c", at(date(2026, 3, 3)), "stage1", "upheld")
    ind = build_indicators(h.ordered(), Period(date(2026, 3, 1), date(2026, 3, 31)), BOOK, population=1000)
    assert ind["received"] == {"total": 2, "per_1000": 2.0}
    assert ind["closed"]["total"] == 2 and ind["closed"]["stage1"]["count"] == 2
    assert ind["extended"]["stage1"] == {"count": 1, "share": 0.5}
    assert ind["within_timescale"]["stage1"] == {"count": 0, "share": 0.0}
    assert ind["closed"]["stage2"] == {"count": 0, "share": 0.0}
    assert ind["outcomes"]["stage2"]["upheld"] == {"count": 0, "share": None}
    assert ind["average_working_days"]["stage2"] is None


def test_the_indicators_cover_the_spso_model_procedures_and_count_the_others_apart() -> None:
    """SPSO indicators count cases of procedures whose file says `model: spso`; a Dundee 2011 case (calendar
    days) and an England children's case are left out of every indicator and counted apart."""
    h = History()
    h.received("spso", at(date(2026, 3, 2)))
    h.responded("spso", at(date(2026, 3, 4)), "stage1", "upheld")
    for subject, procedure, stage in (("dundee", "dundee-2011", "level1"), ("england", "england-children-2006",
                                                                           "stage1")):
        h.add("complaint.received", subject, at(date(2026, 3, 2)), service_area="general", channel="phone",
              stage=stage, serious=False, procedure=procedure)
        h.responded(subject, at(date(2026, 3, 3)), stage, "not_upheld")
    h.add("complaint.received", "dundee-open", at(date(2026, 3, 9)), service_area="general", channel="phone",
          stage="level1", serious=False, procedure="dundee-2011")
    ind = build_indicators(h.ordered(), Period(date(2026, 3, 1), date(2026, 3, 31)), BOOK, population=1000)
    assert ind["procedures"] == ["spso-mchp"]
    assert ind["received"] == {"total": 1, "per_1000": 1.0}
    assert ind["closed"]["total"] == 1 and ind["outcomes"]["stage1"]["not_upheld"]["count"] == 0
    assert ind["left_out"] == {"dundee-2011": {"received": 2, "closed": 1},
                               "england-children-2006": {"received": 1, "closed": 1}}
    markdown = render_indicators_markdown(ind)
    assert "Covers the complaints of the procedures that follow the SPSO model: spso-mchp." in markdown
    assert "Left out (other procedures): dundee-2011 2 received, 1 closed; england-children-2006 1 received, " \
           "1 closed." in markdown


def test_an_act_the_judgement_refuses_is_skipped_by_the_indicators_as_by_the_report() -> None:
    """Contract 11.1: a history recorded under 1.1 may hold an escalation to `stage3` of an spso-mchp case (no
    such stage) or a response at a stage the case is not at; the judgement refuses both, so the case stays
    closed at stage 1, upheld, in the report and in the indicators alike."""
    h = History()
    h.received("a", at(date(2026, 3, 2)))
    h.responded("a", at(date(2026, 3, 4)), "stage1", "upheld")
    h.add("complaint.escalated", "a", at(date(2026, 3, 6)), to_stage="stage3")  # refused: no stage3
    h.received("b", at(date(2026, 3, 2)))
    h.responded("b", at(date(2026, 3, 3)), "stage2", "upheld")  # refused: b is at stage1
    h.responded("b", at(date(2026, 3, 5)), "stage1", "not_upheld")
    h.received("c", at(date(2026, 3, 2)))
    h.responded("c", at(date(2026, 3, 3)), "stage1", "not_upheld")
    h.add("complaint.escalated", "c", at(date(2026, 3, 4)), to_stage="stage2")
    h.responded("c", at(date(2026, 3, 20)), "stage2", "upheld")
    h.add("complaint.escalated", "c", at(date(2026, 3, 23)), to_stage="stage1")  # refused: not a later stage
    period = Period(date(2026, 3, 1), date(2026, 3, 31))
    report = build_report(h.ordered(), period, BOOK, load_settings({}).labels)["complaints"]
    ind = build_indicators(h.ordered(), period, BOOK)
    assert report["outcomes"]["upheld"] == 2 and report["outcomes"]["ongoing"] == 0
    decided = sum(report["outcomes"][o] for o in OUTCOMES)
    assert ind["closed"]["total"] == decided == 3
    assert sum(ind["outcomes"][b]["upheld"]["count"] for b in BUCKETS) == report["outcomes"]["upheld"]
    assert ind["closed"]["stage1"]["count"] == 2 and ind["closed"]["escalated"]["count"] == 1
