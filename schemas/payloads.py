"""Payload models for every event type of contract sections 3 and 4."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StrictBool, model_validator

from schemas.envelope import WHITE_SPACE
from schemas.times import SINGLE_LINE, Rfc3339Date, Rfc3339DateTime

Short = Field(min_length=1, max_length=100)
Text = Field(min_length=1, max_length=4000)
StageId = Field(min_length=1, max_length=50, pattern=r"^[a-z0-9_\-]+$", json_schema_extra=SINGLE_LINE)
Outcome = Literal["upheld", "partially_upheld", "not_upheld", "resolved"]
ActionLevel = Literal["individual", "local", "systemic"]
DeadlineKind = Literal["acknowledge", "respond", "learning"]
# JSON numbers only, as the published schemas say: no text or boolean coerced to a number.
Number = Annotated[float, Strict()]
# complaint.received version 2: a pseudonymous reference has no white space and no '@', so neither a
# name ("Jo Bloggs") nor an e-mail address passes (schemas/upcast.py reads version 1 history by it too).
PSEUDONYMOUS_REF_PATTERN = f"^[^@{WHITE_SPACE}]{{1,100}}$"
_PSEUDONYMOUS_REF = re.compile(PSEUDONYMOUS_REF_PATTERN)


def is_pseudonymous(ref: str) -> bool:
    """Whether a complainant reference is pseudonymous in form (no white space, no '@', 1 to 100 characters)."""
    return _PSEUDONYMOUS_REF.fullmatch(ref) is not None


def _pseudonymous(ref: str) -> str:
    if not is_pseudonymous(ref):
        raise ValueError("must be a pseudonymous reference (no spaces, no '@'), never a name or an e-mail address; "
                         "send the upstream system's own reference for the complainant, e.g. 'CR-000123'")
    return ref


PseudonymousRef = Annotated[str, AfterValidator(_pseudonymous)]


class Payload(BaseModel):
    """Base of every payload: unknown fields are refused so typos surface as dead letters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- complaints -----------------------------------------------------------------------------


class ComplaintReceived(Payload):
    service_area: str = Short
    channel: str = Short
    stage: str = StageId
    serious: StrictBool
    themes: list[str] = Field(default_factory=list, max_length=20)
    procedure: str | None = Field(default=None, min_length=1, max_length=50)
    complainant_ref: PseudonymousRef | None = Field(
        default=None, min_length=1, max_length=100,
        json_schema_extra={"pattern": PSEUDONYMOUS_REF_PATTERN,
                           "description": "A pseudonymous reference (payload version 2): no white space and no "
                                          "'@', so never a name or an e-mail address."})


class ComplaintAcknowledged(Payload):
    stage: str = StageId


class ComplaintExtensionAgreed(Payload):
    stage: str = StageId
    new_due: Rfc3339Date
    reason: str = Text


class ComplaintResponded(Payload):
    stage: str = StageId
    outcome: Outcome


class ComplaintEscalated(Payload):
    to_stage: str = StageId


class ComplaintWithdrawn(Payload):
    stage: str | None = Field(default=None, min_length=1, max_length=50)


class ComplaintClosed(Payload):
    pass


class ComplaintSuspended(Payload):
    stage: str = StageId
    reason: str = StageId  # a code the procedure lists for the stage, e.g. advocate_appointment


class ComplaintResumed(Payload):
    stage: str = StageId


# --- compliments ----------------------------------------------------------------------------


class ComplimentReceived(Payload):
    service_area: str = Short
    channel: str = Short
    about: Literal["service", "staff"]
    team: str | None = Field(default=None, min_length=1, max_length=100)


# --- surveys --------------------------------------------------------------------------------


class Benchmark(Payload):
    label: str = Short
    value: Number = Field(ge=0, le=1)


# A survey answer as JSON gives it: text, a whole number or a boolean (a yes/no answer).
Answer = str | bool | int
Scale = Literal["likert5", "yes_no", "score10"]
# The answers on each scale, as canonical keys (`scale_key`): a number and its decimal text are one answer.
SCALE_ANSWERS: dict[str, frozenset[str]] = {
    "likert5": frozenset(str(n) for n in range(1, 6)),
    "yes_no": frozenset({"yes", "no"}),
    "score10": frozenset(str(n) for n in range(0, 11)),
}


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
ALL_SCALE_ANSWERS = frozenset().union(*SCALE_ANSWERS.values())


def scale_key(answer: object) -> str | None:
    """An answer as the one key it has on every scale, None when it is on none.

    Booleans are yes/no, numbers count by value (4 == 4.0 == "4" == " 4 "), text is stripped and
    case-folded ("Yes" == "yes"). Intake's scale check, the metrics service and the report all key
    answers by this, so an answer is on a scale, and positive, in the same way everywhere.
    """
    if isinstance(answer, bool):
        key: str | None = "yes" if answer else "no"
    elif isinstance(answer, int | float):
        key = _number_key(float(answer))
    elif isinstance(answer, str):
        text = answer.strip().casefold()
        key = _number_key(float(text)) if _NUMBER.match(text) else text
    else:
        key = None
    return key if key in ALL_SCALE_ANSWERS else None


def _number_key(value: float) -> str | None:
    if not math.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def on_scale(scale: str, answer: object) -> bool:
    """Whether an answer is one of the scale's answers (`SCALE_ANSWERS`)."""
    return scale_key(answer) in SCALE_ANSWERS.get(scale, frozenset())


def _scale_values(scale: str) -> list[Any]:
    """Every JSON value that is an answer on the scale, for the published schema's `enum`."""
    if scale == "yes_no":
        return ["yes", "no", True, False]
    numbers = sorted(int(key) for key in SCALE_ANSWERS[scale])
    return [*numbers, *(str(n) for n in numbers)]


# The published schema says what `_positive_answers_on_scale` checks: each scale's positive answers.
_POSITIVE_BY_SCALE: dict[str, Any] = {"allOf": [
    {"if": {"properties": {"scale": {"const": scale}}, "required": ["scale"]},
     "then": {"properties": {"positive": {"items": {"enum": _scale_values(scale)}}}}}
    for scale in sorted(SCALE_ANSWERS)
]}


class SurveyQuestion(Payload):
    model_config = ConfigDict(json_schema_extra=_POSITIVE_BY_SCALE)

    question_id: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_\-]+$", json_schema_extra=SINGLE_LINE)
    text: str = Text
    scale: Scale
    positive: list[Answer] = Field(min_length=1, max_length=11)
    target: Number | None = Field(default=None, ge=0, le=1)
    benchmark: Benchmark | None = None

    @model_validator(mode="after")
    def _positive_answers_on_scale(self) -> Self:
        # Exactly the published enum (a definition is written once, by the council's own tool), where a
        # response's answers are matched leniently (`scale_key`).
        values = _scale_values(self.scale)
        wrong = [a for a in self.positive if not any(type(a) is type(v) and a == v for v in values)]
        if wrong:
            raise ValueError(f"positive answers {wrong} are not on the {self.scale} scale {_scale_values(self.scale)}")
        return self


class SurveyDefined(Payload):
    title: str = Text
    questions: list[SurveyQuestion] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _unique_questions(self) -> Self:
        ids = [q.question_id for q in self.questions]
        if len(ids) != len(set(ids)):
            raise ValueError("question_id values must be unique within a survey")
        return self


class SurveyResponseSubmitted(Payload):
    survey_id: str = Field(min_length=1, max_length=200)
    respondent_type: str = Short
    service_area: str | None = Field(default=None, min_length=1, max_length=100)
    answers: dict[str, Answer] = Field(min_length=1, max_length=100)


# --- learning (inbound) ---------------------------------------------------------------------


class LearningActionAdded(Payload):
    action_id: str = Field(min_length=1, max_length=100)
    level: ActionLevel
    description: str = Text


class LearningActionCompleted(Payload):
    action_id: str = Field(min_length=1, max_length=100)


class LearningPlanSubmitted(Payload):
    pass


# --- derived --------------------------------------------------------------------------------


class DeadlinePayload(Payload):
    stage: str = StageId
    kind: DeadlineKind
    due: Rfc3339DateTime


class DeadlineMet(DeadlinePayload):
    late: StrictBool


class DeadlineBreachWithdrawn(DeadlinePayload):
    """Contract 11.2: an act recorded after a breach showed the deadline was met in time."""

    breached_id: str = Field(min_length=1, max_length=200, json_schema_extra=SINGLE_LINE,
                             description="the id of the deadline.breached (learning: learning.stage.overdue) "
                                         "it withdraws")
    met_at: Rfc3339DateTime = Field(description="when the act that met the deadline happened (on or before due)")


class LearningStageDue(Payload):
    due: Rfc3339DateTime


class LearningStageCompleted(LearningStageDue):
    late: StrictBool
