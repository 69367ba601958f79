"""Window maths, label folding and satisfaction classification of the metrics service (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.common.figures import answer_key
from services.common.settings import load_settings
from services.metrics import domain as d
from services.metrics.collector import MetricsCollector
from services.metrics.satisfaction import satisfaction
from tests.unit import metrics_support as support

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
SETS = support.SETS


def ev(type_: str, time_: datetime, data: dict, subject: str = "s-1") -> dict:
    return {"type": type_, "subject": subject, "time": time_.isoformat(), "data": data}


def survey_event(survey: str = "sv", time_: datetime = NOW) -> dict:
    return ev("survey.defined", time_, {"title": "t", "questions": [
        {"question_id": "q1", "text": "x", "scale": "likert5", "positive": ["4", "5"], "target": 0.85,
         "benchmark": {"label": "Scotland", "value": 0.84}},
        {"question_id": "q2", "text": "y", "scale": "yes_no", "positive": ["yes"]}]}, subject=survey)


def answer(q1: object, q2: object = "yes", time_: datetime = NOW, survey: str = "sv", rtype: str = "carer") -> dict:
    return ev("survey.response.submitted", time_,
              {"survey_id": survey, "respondent_type": rtype, "answers": {"q1": q1, "q2": q2}})


def test_unknown_service_area_is_folded_into_other_and_counted() -> None:
    facts = d.facts_of(ev("compliment.received", NOW, {"service_area": "Mrs Smith's ward"}), SETS)
    assert d.Fact(d.COMPLIMENT, ("other",), d.today_of(NOW)) in facts
    assert d.Fact(d.FOLDED, ("service_area",), d.today_of(NOW)) in facts


def test_known_service_area_keeps_its_value() -> None:
    facts = d.facts_of(ev("compliment.received", NOW, {"service_area": "housing"}), SETS)
    assert facts == [d.Fact(d.COMPLIMENT, ("housing",), d.today_of(NOW))]


def test_configured_service_areas_replace_the_default_set() -> None:
    labels = load_settings({"CASEFEEDBACK_SERVICE_AREAS": "libraries"}).labels
    sets = replace(support.SETS, service_areas=frozenset(labels.service_areas))
    assert d.facts_of(ev("compliment.received", NOW, {"service_area": "libraries"}), sets)[0].labels == ("libraries",)
    assert d.facts_of(ev("compliment.received", NOW, {"service_area": "housing"}), sets)[0].labels == ("other",)


def test_day_is_the_utc_day_of_the_event_time() -> None:
    late_evening_bst = "2026-06-30T23:30:00+01:00"
    assert d.date_of(d.day_of(late_evening_bst)).isoformat() == "2026-06-30"
    assert d.date_of(d.day_of("2026-06-30T00:30:00+01:00")).isoformat() == "2026-06-29"


def test_window_holds_the_last_n_days_including_today() -> None:
    today = d.today_of(NOW)
    days = {today: 1, today - 29: 2, today - 30: 4, today + 1: 8}
    assert d.window_sum(days, today, 30) == 3
    assert d.window_sum(days, today, 90) == 7


def test_windows_slide_as_time_passes_without_new_events() -> None:
    buckets: d.Buckets = {}
    d.add_facts(buckets, d.facts_of(ev("compliment.received", NOW, {"service_area": "housing"}), SETS))
    at = {n: d.windowed(buckets, d.COMPLIMENT, d.today_of(NOW + timedelta(days=n)))[("housing",)]
          for n in (0, 29, 30, 364, 365)}
    assert at[0] == {"30d": 1, "90d": 1, "365d": 1}
    assert at[29]["30d"] == 1 and at[30]["30d"] == 0
    assert at[364]["365d"] == 1 and at[365]["365d"] == 0


def test_satisfaction_counts_positive_answers_by_the_definition() -> None:
    snap = support.replay([(0, 1, survey_event()), (1, 2, answer("5")), (1, 3, answer(4)), (2, 4, answer("2", False))],
                    SETS)
    sat = satisfaction(snap.view().buckets, snap.surveys, SETS, d.today_of(NOW))
    assert sat.responses[("sv", "q1", "carer", "30d")] == 3
    assert sat.positive[("sv", "q1", "carer", "30d")] == 2
    assert sat.positive[("sv", "q2", "carer", "30d")] == 2


def test_responses_before_their_definition_are_classified_once_it_arrives() -> None:
    snap = support.replay([(1, 1, answer("5"))], SETS)
    before = satisfaction(snap.view().buckets, snap.surveys, SETS, d.today_of(NOW))
    assert before.unmatched["30d"] == 2 and not before.responses
    d.keep_survey(snap.surveys, d.survey_of(survey_event(), 0, 2))
    after = satisfaction(snap.view().buckets, snap.surveys, SETS, d.today_of(NOW))
    assert after.positive[("sv", "q1", "carer", "30d")] == 1


def test_a_later_definition_replaces_an_earlier_one() -> None:
    surveys: dict[str, d.Survey] = {}
    d.keep_survey(surveys, d.survey_of(survey_event(), 0, 5))
    d.keep_survey(surveys, d.Survey("sv", 0, 3))
    assert surveys["sv"].seq == 5


def test_answers_off_every_scale_are_stored_as_other() -> None:
    assert answer_key(True) == "yes"
    assert answer_key(7) == "7"
    assert answer_key(" YES ") == "yes"
    assert answer_key("my free text") == "other"


def test_outcomes_and_received_volumes() -> None:
    received = d.facts_of(ev("complaint.received", NOW, {"service_area": "housing", "stage": "stage1"}), SETS)
    responded = d.facts_of(ev("complaint.responded", NOW, {"stage": "stage2", "outcome": "upheld"}), SETS)
    assert received[0].labels == ("stage1", "housing") and responded[0].labels == ("stage2", "upheld")


def test_event_without_a_valid_time_is_refused() -> None:
    try:
        d.facts_of({"type": "compliment.received", "time": "yesterday", "data": {}}, SETS)
    except d.BadEvent as exc:
        assert "RFC 3339" in str(exc)
    else:
        raise AssertionError("a bad time must be refused")


def _scrape(snap: support.Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(snap, lambda: NOW))
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _summed(scrapes: list[dict], name: str) -> dict:
    total: dict = {}
    for scrape in scrapes:
        for (n, labels), v in scrape.items():
            if n == name:
                total[labels] = total.get(labels, 0) + v
    return total


areas = st.sampled_from(["housing", "general", "elsewhere"])
answers = st.sampled_from(["1", "2", "3", "4", "5", "yes", "no"])
offsets = st.integers(min_value=0, max_value=400)
events = st.lists(st.tuples(st.integers(0, 5), st.booleans(), areas, answers, offsets), max_size=40)


@given(events)
@settings(max_examples=60, deadline=None)
def test_figures_summed_across_partition_owners_equal_the_single_owner(evs: list) -> None:
    history = [(0, 0, survey_event())]
    for seq, (partition, is_answer, area, ans, offset) in enumerate(evs, start=1):
        when = NOW - timedelta(days=offset)
        body = answer(ans, time_=when) if is_answer else ev("compliment.received", when, {"service_area": area})
        history.append((partition, seq, body))
    whole = support.replay(history, SETS)
    halves = [support.Snapshot({p: b for p, b in whole.buckets.items() if p % 2 == k}, whole.surveys, SETS)
              for k in (0, 1)]
    one, parts = _scrape(whole), [_scrape(h) for h in halves]
    for name in ("casefeedback_satisfaction_responses", "casefeedback_satisfaction_positive",
                 "casefeedback_compliments_total", "casefeedback_compliments_received"):
        assert _summed(parts, name) == _summed([one], name)


def test_compaction_keeps_totals_and_windows_and_bounds_the_days() -> None:
    today = d.today_of(NOW)
    buckets: d.Buckets = {("compliment", ("housing",)): {today - n: 1 for n in range(0, 1000, 7)}}
    before = (d.totals(buckets, "compliment"), d.windowed(buckets, "compliment", today))
    d.compact(buckets, today)
    assert (d.totals(buckets, "compliment"), d.windowed(buckets, "compliment", today)) == before
    days = buckets[("compliment", ("housing",))]
    assert min(day for day in days if day != d.ARCHIVE_DAY) >= today - d.KEEP_DAYS
    assert days[d.ARCHIVE_DAY] == len(range(d.KEEP_DAYS + 6, 1000, 7))
