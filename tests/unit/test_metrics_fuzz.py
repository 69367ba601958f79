"""Whole hostile stories through the metrics domain: it refuses with BadEvent or counts, nothing else;
the exported series stay within the caps; no answer is lost silently; the live figures equal replay."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.metrics import domain as d
from services.metrics import satisfaction as sat
from services.metrics.collector import MetricsCollector
from services.metrics.figures import LiveFigures
from tests.unit import metrics_support as support

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
TODAY = d.today_of(NOW)
# Room for two named questions and the fold: caps small enough that stories cross them.
SETS = replace(support.SETS, max_series=3 * sat.series_per_question(support.SETS), max_questions=2)
SAT = {"casefeedback_satisfaction_responses", "casefeedback_satisfaction_positive", "casefeedback_satisfaction_ratio"}

huge = st.integers(min_value=10**300, max_value=10**400) | st.just(10**5000)
weird_text = st.sampled_from(["NaN", "nan", "Infinity", "-Infinity", "1e309", "", " ", "5.0", "０", "x" * 100_000])
hostile = (st.none() | st.booleans() | st.integers(-20, 20) | huge | st.floats(allow_nan=True) | weird_text
           | st.text(max_size=20) | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=3),
                                                                                         st.integers(), max_size=2))


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = hostile) -> st.SearchStrategy[Any]:
    """Usually `good`, about one in ten `bad`: stories must get far enough to count."""
    return st.integers(0, 9).flatmap(lambda i: bad if i == 4 else good)  # 4: not an edge value hypothesis favours


pick = st.sampled_from
survey_ids = mostly(pick(["s1", "s2", "s3"]))
question_ids = mostly(pick(["q1", "q2", "q3"]))
times = mostly(st.integers(-400, 3).map(lambda days: (NOW + timedelta(days=days)).isoformat()),
               pick(["9999-12-31T23:59:00-05:00", "0001-01-01T00:00:00+05:00", "yesterday", "2026-03-31T12:00:00",
                     "2026-02-30T00:00:00Z"]) | hostile)


def event(type_: str, data: st.SearchStrategy[Any], subject: st.SearchStrategy[Any] | None = None
          ) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda t, dd, s: {"type": type_, "time": t, "subject": s, "data": dd}, times, mostly(data),
                     st.just("x") if subject is None else subject)


question = st.fixed_dictionaries(
    {"question_id": question_ids},
    optional={"positive": mostly(st.lists(mostly(pick(["4", "5", "yes", 5, True])), max_size=3)),
              "target": mostly(st.floats(0, 1)),
              "benchmark": mostly(st.fixed_dictionaries({"label": st.text(max_size=5),
                                                         "value": mostly(st.floats(0, 1))}))})
questions = mostly(st.lists(question, min_size=1, max_size=5))
definitions = event("survey.defined", st.fixed_dictionaries({"questions": questions}), subject=survey_ids)
answer_keys = mostly(pick(["q1", "q2", "q3"]), weird_text | st.text(max_size=5))
answers = mostly(st.dictionaries(answer_keys, mostly(pick(["1", "4", "5", "yes", "no", 5, True])), max_size=4))
responses = event("survey.response.submitted", st.fixed_dictionaries(
    {"survey_id": survey_ids, "respondent_type": mostly(pick(["carer", "staff", "public"])), "answers": answers}))
complaints = (event("complaint.received", st.fixed_dictionaries(
    {"stage": mostly(pick(["stage1", "stage2"])), "service_area": mostly(pick(["housing", "general"]))}))
    | event("complaint.responded", st.fixed_dictionaries(
        {"stage": mostly(pick(["stage1", "level2"])), "outcome": mostly(pick(["upheld", "resolved"]))})))
compliments = event("compliment.received", st.fixed_dictionaries({"service_area": mostly(pick(["housing"]))}))
stories = st.lists(st.tuples(st.integers(0, 2), mostly(definitions | responses | responses | complaints
                                                        | compliments)), min_size=8, max_size=30)


def counted(story: list[tuple[int, Any]]) -> list[tuple[int, int, d.Counted]]:
    """Each event counted as the worker counts it; only BadEvent may refuse one."""
    out = []
    for seq, (partition, body) in enumerate(story, start=1):
        try:
            out.append((partition, seq, d.count(body, partition, seq, SETS)))
        except d.BadEvent:
            continue
    return out


@given(stories)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_hostile_stories_are_counted_or_refused_and_stay_within_the_caps(story: list[tuple[int, Any]]) -> None:
    live = LiveFigures(SETS)
    live.load({0: {}, 1: {}, 2: {}})
    for partition, _seq, one in counted(story):
        facts: d.Buckets = {}
        d.add_facts(facts, one.facts)
        live.adopt({partition: facts}, [one.survey] if one.survey else [])
    replayed = support.replay(((p, seq, body) for seq, (p, body) in enumerate(story, start=1)), SETS)
    view = live.view()
    assert view.buckets == replayed.view().buckets and dict(view.surveys) == replayed.surveys

    families = {f.name: f.samples for f in MetricsCollector(live, lambda: NOW).collect()}
    series = [s for name, samples in families.items() if name in SAT for s in samples]
    assert len(series) <= SETS.max_series
    named = sat.named_questions(view.surveys, SETS) | {sat.FOLD}
    assert all((s.labels["survey"], s.labels["question"]) in named for s in series)
    assert all(s.labels["respondent_type"] in SETS.respondent_types | {d.OTHER} for s in series)

    answers = sum(d.window_sum(days, TODAY, 365) for (kind, _), days in view.buckets.items() if kind == d.ANSWER)
    shown = sum(s.value for s in families["casefeedback_satisfaction_responses"] if s.labels["window"] == "365d")
    unmatched = next(s.value for s in families["casefeedback_satisfaction_unmatched_answers"]
                     if s.labels["window"] == "365d")
    assert shown + unmatched == answers, "every answer in the window is shown, under its labels or other, or unmatched"
