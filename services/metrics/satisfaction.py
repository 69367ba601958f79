"""Satisfaction figures at a given day: which answers are positive, and which label values each gets.

Pure: standard library only. The series exported stay bounded whatever the definitions say.
Questions get their own (survey, question) label values in definition order (survey history seq,
then question order), at most `max_questions` per survey and as many as `max_series` allows; the
answers to every other defined question are exported as (other, other) and counted as folded. The
choice depends only on the definitions and the settings, which all workers share, so the same
question has the same labels on every worker and `sum()` across workers stays right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice

from services.common.figures import OTHER
from services.metrics.domain import ANSWER, WINDOWS, Buckets, LabelSets, Survey, View, window_sum

FAMILIES = 3  # responses, positive, ratio
FOLD = (OTHER, OTHER)
SatKey = tuple[str, str, str, str]  # survey, question, respondent_type, window
Pair = tuple[str, str]  # survey, question


def series_per_question(sets: LabelSets) -> int:
    """Series one (survey, question) label pair can take: every respondent type and `other`, window, family."""
    return FAMILIES * len(WINDOWS) * (len(sets.respondent_types) + 1)


def named_questions(surveys: Mapping[str, Survey], sets: LabelSets) -> set[Pair]:
    """The defined questions exported under their own labels (the fold keeps one question's room)."""
    room = max(sets.max_series // series_per_question(sets) - 1, 0)
    ordered = sorted(surveys.values(), key=lambda s: (s.seq, s.survey_id))
    pairs = ((s.survey_id, q) for s in ordered for q in islice(s.questions, max(sets.max_questions, 0)))
    return set(islice(pairs, room))


@dataclass
class Satisfaction:
    """Answers and positive answers per series; answers unmatched or folded per window; questions folded."""

    responses: dict[SatKey, int] = field(default_factory=lambda: defaultdict(int))
    positive: dict[SatKey, int] = field(default_factory=lambda: defaultdict(int))
    unmatched: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    folded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    folded_questions: int = 0


def satisfaction(buckets: Buckets, surveys: Mapping[str, Survey], sets: LabelSets, today: int) -> Satisfaction:
    """Satisfaction counts at `today`; answers to undefined surveys or questions count as unmatched."""
    out, named = Satisfaction(), named_questions(surveys, sets)
    out.folded_questions = sum(len(s.questions) for s in surveys.values()) - len(named)
    for (survey_id, qid, rtype, answer), days in _answers(buckets):
        survey = surveys.get(survey_id)
        question = survey.questions.get(qid) if survey else None
        pair = (survey_id, qid) if (survey_id, qid) in named else FOLD
        rtype = rtype if rtype in sets.respondent_types else OTHER
        for window, length in WINDOWS.items():
            n = window_sum(days, today, length)
            if not n:
                continue
            if question is None:
                out.unmatched[window] += n
                continue
            out.folded[window] += n if pair is FOLD else 0
            out.responses[(*pair, rtype, window)] += n
            out.positive[(*pair, rtype, window)] += n if answer in question.positive else 0
    return out


def _answers(buckets: Buckets) -> Iterator[tuple[tuple[str, ...], Mapping[int, int]]]:
    return ((labels, days) for (kind, labels), days in buckets.items() if kind == ANSWER and len(labels) == 4)


def targets(view: View) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    """Targets per (survey, question) and benchmarks per (survey, question, benchmark) of the named
    questions whose definition is on an owned partition (so each is exported once across workers)."""
    named = named_questions(view.surveys, view.sets)
    target: dict[tuple[str, ...], float] = {}
    benchmark: dict[tuple[str, ...], float] = {}
    for survey in (s for s in view.surveys.values() if s.partition in view.partitions):
        for qid, q in survey.questions.items():
            if (survey.survey_id, qid) not in named:
                continue
            if q.target is not None:
                target[(survey.survey_id, qid)] = q.target
            if q.benchmark is not None:
                benchmark[(survey.survey_id, qid, q.benchmark[0])] = q.benchmark[1]
    return target, benchmark
