"""Payload models for every event type of contract sections 3 and 4."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, model_validator

from schemas.times import Rfc3339Date, Rfc3339DateTime

Short = Field(min_length=1, max_length=100)
Text = Field(min_length=1, max_length=4000)
StageId = Field(min_length=1, max_length=50, pattern=r"^[a-z0-9_\-]+$")
Outcome = Literal["upheld", "partially_upheld", "not_upheld", "resolved"]
ActionLevel = Literal["individual", "local", "systemic"]
DeadlineKind = Literal["acknowledge", "respond", "learning"]
# JSON numbers only, as the published schemas say: no text or boolean coerced to a number.
Number = Annotated[float, Strict()]


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
    complainant_ref: str | None = Field(default=None, min_length=1, max_length=100)


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


SCALE_ANSWERS: dict[str, frozenset[str]] = {
    "likert5": frozenset({"1", "2", "3", "4", "5"}),
    "yes_no": frozenset({"yes", "no"}),
    "score10": frozenset(str(n) for n in range(0, 11)),
}


class SurveyQuestion(Payload):
    question_id: str = Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_\-]+$")
    text: str = Text
    scale: Literal["likert5", "yes_no", "score10"]
    positive: list[str] = Field(min_length=1, max_length=11)
    target: Number | None = Field(default=None, ge=0, le=1)
    benchmark: Benchmark | None = None

    @model_validator(mode="after")
    def _positive_answers_on_scale(self) -> Self:
        allowed = SCALE_ANSWERS[self.scale]
        wrong = [a for a in self.positive if a not in allowed]
        if wrong:
            raise ValueError(f"positive answers {wrong} are not on the {self.scale} scale {sorted(allowed)}")
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


Answer = str | int | bool


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


class LearningStageDue(Payload):
    due: Rfc3339DateTime


class LearningStageCompleted(LearningStageDue):
    late: StrictBool
