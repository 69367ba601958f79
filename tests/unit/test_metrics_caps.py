"""Satisfaction series stay bounded by configurable caps; what the caps fold is counted, never silent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.common.settings import load_settings
from services.metrics import domain as d
from services.metrics.collector import MetricsCollector
from tests.unit import metrics_support as support

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
TODAY = d.today_of(NOW)
SAT = ("casefeedback_satisfaction_responses", "casefeedback_satisfaction_positive",
       "casefeedback_satisfaction_ratio")
RTYPES = (*support.RESPONDENT_TYPES, d.OTHER)
DEFAULTS = support.SETS


def defined(surveys: int, questions: int, prefix: str = "survey") -> dict[str, d.Survey]:
    """`surveys` definitions of `questions` questions each, in history order."""
    question = d.Question(frozenset({"4", "5"}), target=0.8, benchmark=("Scotland", 0.75))
    return {f"{prefix}-{i}": d.Survey(f"{prefix}-{i}", 0, i + 1, {f"q{j}": question for j in range(questions)})
            for i in range(surveys)}


def answered(surveys: dict[str, d.Survey]) -> d.Buckets:
    """Every question of every survey answered today by every respondent type."""
    return {(d.ANSWER, (s.survey_id, q, rtype, "5")): {TODAY: 1}
            for s in surveys.values() for q in s.questions for rtype in RTYPES}


def exposition(surveys: dict[str, d.Survey], sets: d.LabelSets = DEFAULTS) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(support.Snapshot({0: answered(surveys)}, surveys, sets), lambda: NOW))
    return generate_latest(registry)


def samples(text: bytes) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append({**s.labels, "value": str(s.value)})
    return out


def test_a_scrape_of_50_surveys_of_50_questions_stays_under_a_megabyte() -> None:
    text = exposition(defined(50, 50))
    series = sum(len(v) for k, v in samples(text).items() if k in SAT)
    assert len(text) < 1_000_000, f"scrape of {len(text):,} bytes"
    assert series <= support.SETS.max_series


def test_a_realistic_council_keeps_every_question_named() -> None:
    surveys = defined(6, 10)
    got = samples(exposition(surveys))
    assert not [s for s in got["casefeedback_satisfaction_responses"] if s["question"] == d.OTHER]
    assert got["casefeedback_satisfaction_folded_questions"][0]["value"] == "0.0"


def test_questions_beyond_the_cap_fold_into_other_and_are_counted() -> None:
    surveys, sets = defined(50, 50), support.SETS
    got = samples(exposition(surveys, sets))
    named = {(s["survey"], s["question"]) for s in got["casefeedback_satisfaction_responses"]}
    folded_questions = float(got["casefeedback_satisfaction_folded_questions"][0]["value"])
    assert (d.OTHER, d.OTHER) in named
    assert folded_questions == 50 * 50 - (len(named) - 1) > 0
    folded = {s["window"]: float(s["value"]) for s in got["casefeedback_satisfaction_folded_answers"]}
    assert folded["30d"] == folded_questions * len(RTYPES)
    other = [s for s in got["casefeedback_satisfaction_responses"]
             if s["survey"] == d.OTHER and s["window"] == "30d"]
    assert sum(float(s["value"]) for s in other) == folded["30d"], "folded answers still count, under other"


def test_the_series_cap_and_the_question_cap_are_configurable() -> None:
    settings = load_settings({"CASEFEEDBACK_MAX_SATISFACTION_SERIES": "20000",
                              "CASEFEEDBACK_MAX_SURVEY_QUESTIONS": "3"})
    sets = replace(support.SETS, max_series=settings.max_satisfaction_series,
                   max_questions=settings.max_survey_questions)
    assert (sets.max_series, sets.max_questions) == (20000, 3)
    got = samples(exposition(defined(4, 5), sets))
    questions = {s["question"] for s in got["casefeedback_satisfaction_responses"]}
    assert questions == {"q0", "q1", "q2", d.OTHER}, "the 4th and 5th question of each survey fold"
    assert float(got["casefeedback_satisfaction_folded_questions"][0]["value"]) == 4 * 2


def test_a_folded_survey_never_exports_its_question_ids() -> None:
    sets = replace(support.SETS, max_series=9 * len(RTYPES) * 2)  # room for one named question and the fold
    got = samples(exposition(defined(3, 4, prefix="s"), sets))
    labels = {(s["survey"], s["question"]) for s in got["casefeedback_satisfaction_responses"]}
    assert labels == {("s-0", "q0"), (d.OTHER, d.OTHER)}


def test_targets_and_benchmarks_are_exported_for_named_questions_only() -> None:
    surveys = defined(50, 50)
    got = samples(exposition(surveys))
    named = {(s["survey"], s["question"]) for s in got["casefeedback_satisfaction_responses"]} - {(d.OTHER, d.OTHER)}
    targets = {(s["survey"], s["question"]) for s in got["casefeedback_satisfaction_target_ratio"]}
    benchmarks = {(s["survey"], s["question"]) for s in got["casefeedback_satisfaction_benchmark_ratio"]}
    assert targets == benchmarks == named
