"""Whether a valid event fits what its predecessor says: the checks that need what the history holds.

- a case's `complaint.*` and `learning.*` acts wait in the hold for their predecessor (the case's
  `complaint.received`; for `learning.*`, its `complaint.closed`) and are then judged against the
  case's whole story by `services.cases` (contract 11.1), as the worker appends them;
- a `survey.response.submitted` answers the questions of its survey's latest `survey.defined`: an
  answer off its question's scale (text such as "Very satisfied", 11 on a 0-10 scale) is
  `invalid_data`, naming the question and the scale. Intake learns each survey's scales from the
  history, in the same round trip in which it looks up that the survey exists (or from a
  `survey.defined` earlier in the same batch); answers to questions the survey does not define are
  kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.payloads import SCALE_ANSWERS, on_scale
from schemas.registry import Rejection
from schemas.times import event_time

SCALE_NAMES = {"likert5": "1 to 5", "score10": "0 to 10", "yes_no": "yes or no"}


@dataclass(frozen=True)
class Opener:
    """What the event that opened a case or a survey says that later events must fit."""

    time: datetime
    scales: Mapping[str, str]  # question id -> scale (a survey's; empty for a case)


def opener_of(body: Mapping[str, Any], time: datetime | None = None) -> Opener:
    """The opener a `complaint.received` or `survey.defined` body is."""
    questions = body["data"].get("questions", []) if body.get("type") == "survey.defined" else []
    scales = {str(q["question_id"]): str(q["scale"]) for q in questions}
    return Opener(event_time(body) if time is None else time, scales)


def problem(body: Mapping[str, Any], opener: Opener | None, time: datetime | None = None) -> Rejection | None:
    """Why the event cannot follow its opener, or None when it fits (or there is nothing to check against)."""
    if opener is None:
        return None
    if body["type"] == "survey.response.submitted":
        return _off_scale(body["data"]["answers"], opener.scales)
    return None  # a case's acts are judged against its whole story (`services.cases`) as they are appended


def _off_scale(answers: Mapping[str, Any], scales: Mapping[str, str]) -> Rejection | None:
    for question, answer in answers.items():
        scale = scales.get(question)
        if scale is not None and not on_scale(scale, answer):
            allowed = sorted(SCALE_ANSWERS[scale], key=lambda a: (len(a), a))
            return Rejection("invalid_data", f"data.answers.{question[:50]}: {str(answer)[:50]!r} is not on question "
                                             f"{question[:50]!r}'s {scale} scale ({SCALE_NAMES[scale]}: "
                                             f"{', '.join(allowed)})")
    return None
