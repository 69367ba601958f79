"""Rolling figures by event time: what each history event counts for, and window sums at a given `now`.

Pure: standard library only; time comes in as an argument, never from the clock.

Choices the contract leaves open (following the SPSO model CHP's reporting practice of counting
by the date a thing happened):
- A figure is counted on the UTC calendar day of the event's `time`. A window of N days at `now`
  holds the N days ending with `now`'s day: days in (today - N, today]. Events dated after `now`'s
  day are not yet in any window. Windows therefore slide at midnight UTC without new events.
- Counters (compliments, outcomes, volumes) are totals over all days ever applied.
- Satisfaction is stored as raw answer counts per (survey, question, respondent type, answer, day);
  which answers are positive comes from the survey's definition at the time figures are read, so a
  definition arriving after its responses (on another partition) still classifies them.
- Label values come only from bounded sets (`services/common/figures.py`, the operator's labels file);
  anything else is folded into `other` and counted. Answers are keyed by `figures.answer_key`.
- Counting one event either succeeds or raises BadEvent: whatever else goes wrong is turned into
  BadEvent, so the live worker and replay refuse exactly the same events.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, ParamSpec, TypeVar

from schemas.times import parse_time
from services.common.figures import OTHER, OUTCOMES, LabelValues, answer_key, positive_keys

WINDOWS: dict[str, int] = {"30d": 30, "90d": 90, "365d": 365}
OUTCOME_SET = frozenset(OUTCOMES)
FOLDABLE = ("outcome", "respondent_type", "service_area", "stage")  # labels whose values are folded
ARCHIVE_DAY = 0  # all counts older than KEEP_DAYS, per series: in every all-time total, in no window
KEEP_DAYS = 400  # the longest window (365 days) and a margin
# Satisfaction series (responses, positive, ratio over every window) a worker exports at most, and how many
# questions of one survey may have their own label; see services/metrics/README.md for the arithmetic.
DEFAULT_MAX_SERIES = 4000
DEFAULT_MAX_QUESTIONS = 20

# Bucket kinds (the `metric` column) and what their label tuples hold.
COMPLIMENT = "compliment"  # (service_area,)
RECEIVED = "complaint_received"  # (stage, service_area)
OUTCOME = "complaint_outcome"  # (stage, outcome)
RESPONSE = "survey_response"  # (respondent_type,)
ANSWER = "answer"  # (survey_id, question_id, respondent_type, answer)
FOLDED = "label_folded"  # (label,)

Key = tuple[str, tuple[str, ...]]  # (kind, labels)
Buckets = dict[Key, dict[int, int]]  # key -> day ordinal -> count


class BadEvent(ValueError):
    """A history event that cannot be counted; the message says what is missing."""


P = ParamSpec("P")
R = TypeVar("R")


def _refusing(step: Callable[P, R]) -> Callable[P, R]:
    """The step, raising BadEvent for whatever goes wrong in it (one bad event never stops the service)."""

    @functools.wraps(step)
    def refusing(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return step(*args, **kwargs)
        except BadEvent:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure on one event refuses that event
            raise BadEvent(f"cannot count it: {type(exc).__name__}: {str(exc)[:200]}") from exc

    return refusing


@dataclass(frozen=True)
class LabelSets:
    """The bounded sets label values are taken from (the operator's labels file and the procedures' stages)."""

    service_areas: frozenset[str]
    respondent_types: frozenset[str]
    stages: frozenset[str]
    max_series: int = DEFAULT_MAX_SERIES
    max_questions: int = DEFAULT_MAX_QUESTIONS

    @classmethod
    def configured(cls, labels: LabelValues, stages: Iterable[str], max_series: int = DEFAULT_MAX_SERIES,
                   max_questions: int = DEFAULT_MAX_QUESTIONS) -> LabelSets:
        """The sets of the configured label values and procedure stages, with the satisfaction caps given."""
        return cls(frozenset(labels.service_areas), frozenset(labels.respondent_types), frozenset(stages),
                   max_series, max_questions)


class Fact(NamedTuple):
    """One count an event contributes: bucket kind, label values and the day it falls on.

    A named tuple: every counted event makes one or more, on the live path and in replay.
    """

    kind: str
    labels: tuple[str, ...]
    day: int


@dataclass(frozen=True)
class Question:
    """A survey question as far as figures need it."""

    positive: frozenset[str]
    target: float | None = None
    benchmark: tuple[str, float] | None = None


@dataclass(frozen=True)
class Survey:
    """A survey definition: the partition it was defined on, its history seq and its questions."""

    survey_id: str
    partition: int
    seq: int
    questions: dict[str, Question] = field(default_factory=dict)


def day_of(time: str) -> int:
    """The UTC day ordinal of an RFC 3339 event time."""
    try:
        moment = parse_time(time)
    except (ValueError, AttributeError):
        raise BadEvent(f"time must be RFC 3339, got {time!r}") from None
    if moment.tzinfo is None:
        raise BadEvent(f"time must carry an offset, got {time!r}")
    return (moment - moment.utcoffset()).date().toordinal()  # type: ignore[operator]


def today_of(now: datetime) -> int:
    """The UTC day ordinal of `now`."""
    return day_of(now.isoformat())


def _fold(value: Any, allowed: frozenset[str], label: str, day: int, folded: list[Fact]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    folded.append(Fact(FOLDED, (label,), day))
    return OTHER


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    if not isinstance(data, (dict, Mapping)):  # dict first: the ABC check alone is slow
        raise BadEvent(f"{event.get('type')}: data must be an object")
    return data


def _compliment(event: Mapping[str, Any], day: int, sets: LabelSets) -> list[Fact]:
    folded: list[Fact] = []
    area = _fold(_data(event).get("service_area"), sets.service_areas, "service_area", day, folded)
    return [Fact(COMPLIMENT, (area,), day), *folded]


def _received(event: Mapping[str, Any], day: int, sets: LabelSets) -> list[Fact]:
    data = _data(event)
    folded: list[Fact] = []
    stage = _fold(data.get("stage"), sets.stages, "stage", day, folded)
    area = _fold(data.get("service_area"), sets.service_areas, "service_area", day, folded)
    return [Fact(RECEIVED, (stage, area), day), *folded]


def _responded(event: Mapping[str, Any], day: int, sets: LabelSets) -> list[Fact]:
    data = _data(event)
    folded: list[Fact] = []
    stage = _fold(data.get("stage"), sets.stages, "stage", day, folded)
    outcome = _fold(data.get("outcome"), OUTCOME_SET, "outcome", day, folded)
    return [Fact(OUTCOME, (stage, outcome), day), *folded]


def _response(event: Mapping[str, Any], day: int, sets: LabelSets) -> list[Fact]:
    data = _data(event)
    folded: list[Fact] = []
    survey, answers = data.get("survey_id"), data.get("answers")
    if not isinstance(survey, str) or not isinstance(answers, (dict, Mapping)):
        raise BadEvent("survey.response.submitted: survey_id (string) and answers (object) are required")
    rtype = _fold(data.get("respondent_type"), sets.respondent_types, "respondent_type", day, folded)
    facts = [Fact(ANSWER, (survey, str(q), rtype, answer_key(a)), day) for q, a in answers.items()]
    return [Fact(RESPONSE, (rtype,), day), *facts, *folded]


# Event type -> what it counts for; the table of contents of this service.
COUNTERS = {
    "compliment.received": _compliment,
    "complaint.received": _received,
    "complaint.responded": _responded,
    "survey.response.submitted": _response,
}


@_refusing
def facts_of(event: Mapping[str, Any], sets: LabelSets) -> list[Fact]:
    """The counts one history event contributes (none for types this service does not count)."""
    count = COUNTERS.get(str(event.get("type")))
    if count is None:
        return []
    return count(event, day_of(str(event.get("time"))), sets)


@_refusing
def survey_of(event: Mapping[str, Any], partition: int, seq: int) -> Survey:
    """The definition a `survey.defined` event carries."""
    data = _data(event)
    questions = data.get("questions")
    if not isinstance(questions, list):
        raise BadEvent("survey.defined: questions must be a list")
    _storable(data)
    return Survey(str(event.get("subject")), partition, seq, dict(_question(q) for q in questions))


def _storable(data: Mapping[str, Any]) -> None:
    """Definitions are stored as PostgreSQL jsonb, which holds no NaN, Infinity or NUL character: refuse those."""
    try:
        text = json.dumps(data, allow_nan=False)
    except ValueError:
        raise BadEvent("survey.defined: data must be plain JSON (no NaN or Infinity)") from None
    if "\\u0000" in text:
        raise BadEvent("survey.defined: data must not hold a NUL character")


def _question(raw: Any) -> tuple[str, Question]:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("question_id"), str):
        raise BadEvent("survey.defined: every question needs a question_id")
    bench = raw.get("benchmark")
    benchmark = (str(bench["label"]), _share(bench["value"])) if isinstance(bench, Mapping) else None
    target = raw.get("target")
    positive = positive_keys(raw.get("positive") or [])
    return raw["question_id"], Question(positive, _share(target) if target is not None else None, benchmark)


def _share(value: Any) -> float:
    """A target or benchmark: a JSON number from 0 to 1 (text such as "NaN" is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BadEvent(f"survey.defined: a target or benchmark must be a number from 0 to 1, got {value!r}"[:200])
    return float(value)


class Counted(NamedTuple):
    """What one history event counts for: facts, or (for `survey.defined`) the definition it carries."""

    facts: list[Fact]
    survey: Survey | None


def count(event: Mapping[str, Any], partition: int, seq: int, sets: LabelSets) -> Counted:
    """What one history event counts for, live and in replay alike; raises BadEvent and nothing else."""
    if isinstance(event, (dict, Mapping)) and event.get("type") == "survey.defined":  # dict first: fast
        return Counted([], survey_of(event, partition, seq))
    return Counted(facts_of(event, sets), None)


def add_facts(buckets: Buckets, facts: Iterable[Fact]) -> None:
    """Add one to each fact's bucket."""
    for fact in facts:
        days = buckets.setdefault((fact.kind, fact.labels), {})
        days[fact.day] = days.get(fact.day, 0) + 1


def compact(buckets: Buckets, today: int) -> None:
    """Fold, in place, each series' days older than KEEP_DAYS into its ARCHIVE_DAY count (totals unchanged)."""
    cutoff = compact_cutoff(today)
    for days in buckets.values():
        old = [day for day in days if ARCHIVE_DAY < day < cutoff]
        if old:
            days[ARCHIVE_DAY] = days.get(ARCHIVE_DAY, 0) + sum(days.pop(day) for day in old)


def compact_cutoff(today: int) -> int:
    """Days before this one are folded into the archive."""
    return today - KEEP_DAYS


def window_sum(days: Mapping[int, int], today: int, length: int) -> int:
    """Count of the days in (today - length, today]."""
    return sum(n for day, n in days.items() if today - length < day <= today)


def totals(buckets: Buckets, kind: str) -> dict[tuple[str, ...], int]:
    """All-time total of each label tuple of one bucket kind."""
    return {labels: sum(days.values()) for (k, labels), days in buckets.items() if k == kind}


def windowed(buckets: Buckets, kind: str, today: int) -> dict[tuple[str, ...], dict[str, int]]:
    """Per label tuple of one kind, its count in each window."""
    return {labels: {w: window_sum(days, today, n) for w, n in WINDOWS.items()}
            for (k, labels), days in buckets.items() if k == kind}


def merge(parts: Iterable[Buckets]) -> Buckets:
    """One set of buckets holding the sum of several (e.g. several partitions)."""
    out: Buckets = {}
    for part in parts:
        add_into(out, part)
    return out


def add_into(buckets: Buckets, delta: Buckets) -> None:
    """Add `delta`'s counts to `buckets` in place."""
    for key, days in delta.items():
        into = buckets.setdefault(key, {})
        for day, n in days.items():
            into[day] = into.get(day, 0) + n


def ratio(positive: int, responses: int) -> float | None:
    """Share of positive answers, or None where there are none to stand on."""
    return positive / responses if responses else None


def date_of(day: int) -> date:
    """The date of a day ordinal."""
    return date.fromordinal(day)


class View(NamedTuple):
    """What a scrape reads, consistent and not changed while it is read."""

    buckets: Buckets  # the owned partitions' buckets summed
    partitions: frozenset[int]
    surveys: Mapping[str, Survey]
    sets: LabelSets


def keep_survey(surveys: dict[str, Survey], survey: Survey) -> None:
    """Store a definition unless a later one of the same survey is there."""
    held = surveys.get(survey.survey_id)
    if held is None or held.seq < survey.seq:
        surveys[survey.survey_id] = survey
