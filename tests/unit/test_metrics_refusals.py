"""Whatever goes wrong counting one event, the domain refuses that event with BadEvent and nothing else,
and replay counts exactly what the live worker counts."""

from __future__ import annotations

from typing import Any

import pytest

from services.metrics import domain as d
from tests.unit import metrics_support as support

SETS = support.SETS
TIME = "2026-03-31T12:00:00Z"


def question(**changes: Any) -> dict[str, Any]:
    return {"question_id": "q1", "text": "x", "scale": "likert5", "positive": ["4", "5"], **changes}


HOSTILE = {
    "time before year 1 in UTC": {"type": "compliment.received", "time": "0001-01-01T00:00:00+05:00",
                                  "data": {"service_area": "housing"}},
    "time after year 9999 in UTC": {"type": "complaint.received", "time": "9999-12-31T23:59:00-05:00",
                                    "data": {"stage": "stage1"}},
    "time not a string": {"type": "compliment.received", "time": 20260331, "data": {}},
    "benchmark value too large for a float": {"type": "survey.defined", "subject": "s", "time": TIME,
                                              "data": {"questions": [question(benchmark={"label": "x",
                                                                                         "value": 10**400})]}},
    "benchmark without a value": {"type": "survey.defined", "subject": "s", "time": TIME,
                                  "data": {"questions": [question(benchmark={"label": "x"})]}},
    "target not a number": {"type": "survey.defined", "subject": "s", "time": TIME,
                            "data": {"questions": [question(target={"a": 1})]}},
    "target NaN (not storable as JSON)": {"type": "survey.defined", "subject": "s", "time": TIME,
                                          "data": {"questions": [question(target=float("nan"))]}},
    "infinity in the title (not storable as JSON)": {"type": "survey.defined", "subject": "s", "time": TIME,
                                                     "data": {"title": float("inf"), "questions": [question()]}},
    "NUL character in the title (not storable as jsonb)": {"type": "survey.defined", "subject": "s", "time": TIME,
                                                           "data": {"title": "a\x00b", "questions": [question()]}},
    "positive not a list": {"type": "survey.defined", "subject": "s", "time": TIME,
                            "data": {"questions": [question(positive=5)]}},
    "answer an integer too long to print": {"type": "survey.response.submitted", "time": TIME,
                                            "data": {"survey_id": "s", "respondent_type": "carer",
                                                     "answers": {"q1": 10**5000}}},
    "data a list": {"type": "survey.response.submitted", "time": TIME, "data": [1, 2]},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_anything_wrong_with_one_event_is_refused_as_bad_event(name: str) -> None:
    with pytest.raises(d.BadEvent):
        d.count(HOSTILE[name], 0, 1, SETS)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_separate_steps_refuse_with_bad_event_too(name: str) -> None:
    event = HOSTILE[name]
    with pytest.raises(d.BadEvent):
        if event["type"] == "survey.defined":
            d.survey_of(event, 0, 1)
        else:
            d.facts_of(event, SETS)


def test_replay_skips_exactly_the_events_the_worker_refuses() -> None:
    good = {"type": "compliment.received", "time": TIME, "data": {"service_area": "housing"}}
    history = [(0, seq, body) for seq, body in enumerate([good, *HOSTILE.values(), good], start=1)]
    snap = support.replay(history, SETS)
    live: d.Buckets = {}
    for _partition, seq, body in history:
        try:
            counted = d.count(body, 0, seq, SETS)
        except d.BadEvent:
            continue
        d.add_facts(live, counted.facts)
    assert snap.view().buckets == live
    assert d.totals(live, d.COMPLIMENT) == {("housing",): 2}


def test_a_defined_survey_is_counted_as_a_definition_not_as_facts() -> None:
    counted = d.count({"type": "survey.defined", "subject": "s", "time": TIME,
                       "data": {"questions": [question()]}}, 2, 7, SETS)
    assert counted.facts == [] and counted.survey == d.Survey("s", 2, 7, {"q1": d.Question(frozenset({"4", "5"}))})


def test_types_this_service_does_not_count_contribute_nothing() -> None:
    assert d.count({"type": "learning.action.added", "time": "nonsense"}, 0, 1, SETS) == d.Counted([], None)
