"""The period report (contract section 9): a pure fold over the history's events.

Choices where the contract leaves a rule open (following the SPSO model complaints handling procedure):
- The period runs from `from` 00:00 UTC to the end of `to` (23:59:59.999999 UTC). Only events whose
  event `time` falls at or before the period's end are read, so later events never change a closed
  period's report (the report is about the world as it stood, not about when events were recorded).
- A complaint's stage starts at its `stage`, or at the procedure's serious stage when `serious`; each
  `complaint.escalated` moves it on; `by_stage` counts the highest stage reached (procedure order).
- Every case act is judged as intake judges it (`services.cases`, contract 11.1): an act recorded under
  contract 1.1 that the judgement refuses is skipped. A complaint's stage and outcome are its story's:
  the outcome of its current stage's response; an escalation after a response reopens the complaint
  (SPSO: the complaint is not concluded until the last stage asked for responds), so it is ongoing
  again until the next stage responds. A complaint withdrawn with no outcome is `withdrawn`.
- Timeliness is `figures.settled`'s definition, the one escalation's timeliness gauges use, over the
  deadlines each case's story implies (`services.cases.deadlines`: computed from the acts and the
  procedure alone, never from whether escalation has derived its events yet, contract 11.3). Each
  deadline counts once, in the period it was settled in. Met when its act happened on or before its
  target (the agreed date where an extension was agreed), counted when the act happened; missed when
  met late or when its target passed unmet, counted when it fell due, whether or not its breach has
  been recorded yet (a breach withdrawn because the act that met it in time came late is no miss).
  Deadlines still running at the period's end, and those that ended unmet before they fell due
  (withdrawn, closed, escalated), are not counted. Unlike the other complaint figures this does not
  depend on when the complaint was received, so a dashboard window (whole days ending today) gives
  the same rate as the report over those days.
- Learning counts the learning stages the cases' closures opened in the period, and those whose plan
  was submitted in the period (on time: by the stage's due instant), from the acts alone; compliments
  are counted when received in the period.
- Satisfaction counts answers of responses submitted in the period against each question of the
  survey's latest definition; an answer is positive by `figures.answer_key`, as the metrics service
  judges it. Service areas, respondent types and themes are folded by the configured label values,
  and the upheld rate is `figures.upheld_rate`: every figure the dashboards also show is defined
  once, in `services/common/figures.py`.
- Stage order comes from the procedure book the caller read (the report reads no files).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from schemas.times import event_time, parse_time
from services.cases import rules
from services.cases.deadlines import StoryDeadline, case_deadlines
from services.cases.story import JUDGED_TYPES, Case, Refusal, Story, act_of
from services.common.figures import (
    LATEST_OUTCOMES,
    LabelValues,
    is_positive,
    latest_outcome,
    positive_keys,
    rate,
    upheld_rate,
)
from services.deadlines.procedures import ProcedureBook
from services.escalation.domain import SOURCE as ESCALATION
from services.learning.patterns import Patterns


@dataclass(frozen=True)
class Period:
    """A closed reporting period of whole days (UTC)."""

    start: date
    end: date

    @property
    def first_instant(self) -> datetime:
        return datetime.combine(self.start, time.min, timezone.utc)

    @property
    def last_instant(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, timezone.utc) - timedelta(microseconds=1)

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` falls inside the period."""
        return self.first_instant <= moment <= self.last_instant


@dataclass
class Complaint:
    """What the report needs of one complaint."""

    service_area: str
    procedure: str
    stage: str
    themes: list[str]
    outcome: str | None = None
    status: str = "open"


@dataclass
class Deadline:
    """One deadline of one complaint as escalation recorded it: its target, when its act met it, whether the
    target was breached."""

    due: datetime | None = None
    met_at: datetime | None = None
    breached: bool = False


@dataclass(frozen=True)
class StageOrder:
    """A procedure's stages in order and the stage serious complaints start at."""

    stages: tuple[str, ...]
    serious_stage: str | None

    def rank(self, stage: str) -> int:
        """Position of `stage` in the procedure; an unknown stage ranks after every known one."""
        return self.stages.index(stage) if stage in self.stages else len(self.stages)


def stage_order(book: ProcedureBook, procedure_id: str) -> StageOrder:
    """The stage order of a current procedure; an unknown procedure's stages are taken as they are seen."""
    procedure = book.current(procedure_id)
    if procedure is None:
        return StageOrder((), None)
    return StageOrder(tuple(procedure.stage_ids()), procedure.serious_stage)


@dataclass
class ReportBuilder:
    """Folds history events (bodies, in history order) into the period report."""

    period: Period
    book: ProcedureBook
    labels: LabelValues
    complaints: dict[str, Complaint] = field(default_factory=dict)
    deadlines: dict[tuple[str, str, str], Deadline] = field(default_factory=dict)
    cases: dict[str, Case] = field(default_factory=dict)  # every case's story, from its admitted acts
    _deadlines: list[StoryDeadline] | None = field(default=None, init=False, repr=False)
    compliments: Counter[str] = field(default_factory=Counter)
    learning: Counter[str] = field(default_factory=Counter)
    surveys: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    answers: dict[tuple[str, str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    patterns: Patterns = field(init=False)  # learning actions by service area (learning's fold)

    def __post_init__(self) -> None:
        self.patterns = Patterns(self.labels)

    def add(self, body: dict[str, Any]) -> None:
        """Take one event into account (events after the period's end are ignored)."""
        moment = event_time(body)
        if moment > self.period.last_instant:
            return
        if body["type"] in JUDGED_TYPES and not self._admitted(body, moment):
            return
        # every case's service area is needed; the actions counted are those of the period
        if body["type"] == "complaint.received" or self.period.contains(moment):
            self.patterns.add(body)
        handler = HANDLERS.get(str(body["type"]))
        if handler is not None:
            handler(self, body, moment)

    def _admitted(self, body: dict[str, Any], moment: datetime) -> bool:
        """Whether the one judgement admits the act (moving its case's story on)."""
        act = act_of(body, moment)
        subject = str(body["subject"])
        assert act is not None
        told = rules.judge(self.cases.get(subject, Case()), act, self.book)
        if isinstance(told, Refusal):
            return False
        self.cases[subject] = told
        return True

    def add_all(self, bodies: Iterable[dict[str, Any]]) -> ReportBuilder:
        """Take every event into account; returns self for chaining."""
        for body in bodies:
            self.add(body)
        return self

    def result(self) -> dict[str, Any]:
        """The report as contract section 9's JSON, plus satisfaction, themes and learning actions by area."""
        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "complaints": self._complaints(),
            "compliments": {"total": sum(self.compliments.values()), "by_service_area": _sorted(self.compliments)},
            "learning": self._learning(),
            "satisfaction": self._satisfaction(),
            "themes": self._themes(),
            "learning_actions": self.patterns.result()["learning_actions"],
        }

    def _complaints(self) -> dict[str, Any]:
        for subject, complaint in self.complaints.items():
            self._from_story(complaint, self.cases[subject].story)
        cases = self.complaints.values()
        outcomes = Counter(latest_outcome(c.outcome, c.status) for c in cases)
        return {
            "total": len(self.complaints),
            "by_stage": _sorted(Counter(c.stage for c in cases)),
            "by_service_area": _sorted(Counter(c.service_area for c in cases)),
            "outcomes": {o: outcomes[o] for o in LATEST_OUTCOMES},
            "upheld_rate": upheld_rate(outcomes),
            "acknowledged_within_target_rate": self._timeliness("acknowledge"),
            "responded_within_target_rate": self._timeliness("respond"),
        }

    def _from_story(self, complaint: Complaint, story: Story | None) -> None:
        """The complaint's highest stage, outcome and status as its story tells them by the period's end."""
        if story is None:
            return
        order = stage_order(self.book, complaint.procedure)
        complaint.stage = max(story.stages, key=order.rank) if order.stages else story.stage
        complaint.outcome, complaint.status = story.outcome, story.status

    def _timeliness(self, kind: str) -> float | None:
        return rate(*self.timeliness_counts(kind))

    def story_deadlines(self) -> list[StoryDeadline]:
        """Every deadline the cases' stories imply, by the period's end (computed once per report)."""
        if self._deadlines is None:
            self._deadlines = [d for c in self.cases.values() if c.story is not None
                               for d in case_deadlines(c.story, self.book)]
        return self._deadlines

    def timeliness_counts(self, kind: str) -> tuple[int, int]:
        """The timeliness rate's numerator and denominator for `kind`: (met, counted)."""
        counted = met = 0
        for d in self.story_deadlines():
            done = d.settled_at() if d.kind == kind else None
            if done is not None and self.period.contains(done[0]):
                counted += 1
                met += done[1]
        return met, counted

    def _learning(self) -> dict[str, Any]:
        stages = [d for d in self.story_deadlines() if d.kind == "learning"]
        opened = sum(1 for c in self.cases.values() if c.story is not None
                     for stage in c.story.learning if self.period.contains(stage.opened))
        done = [d for d in stages if d.met_at is not None and self.period.contains(d.met_at)]
        on_time = sum(1 for d in done if d.met_at is not None and d.met_at <= d.due)
        return {"opened": opened, "completed": len(done), "completed_on_time_rate": rate(on_time, len(done))}

    def _satisfaction(self) -> list[dict[str, Any]]:
        rows = []
        for survey_id, questions in sorted(self.surveys.items()):
            for q in questions:
                rows.append(self._question_row(survey_id, q))
        return rows

    def _question_row(self, survey_id: str, q: dict[str, Any]) -> dict[str, Any]:
        qid = str(q["question_id"])
        counts = {rt: (n, pos) for (s, qq, rt), (n, pos) in sorted(self.answers.items())
                  if s == survey_id and qq == qid}
        groups = {rt: {"responses": n, "positive": pos, "ratio": rate(pos, n)} for rt, (n, pos) in counts.items()}
        n = sum(c[0] for c in counts.values())
        pos = sum(c[1] for c in counts.values())
        return {"survey": survey_id, "question": qid, "text": q.get("text", ""), "responses": n, "positive": pos,
                "ratio": rate(pos, n), "target": q.get("target"), "benchmark": q.get("benchmark"),
                "by_respondent_type": groups}

    def _themes(self) -> dict[str, dict[str, int]]:
        themes: dict[str, Counter[str]] = defaultdict(Counter)
        for c in self.complaints.values():
            themes[c.service_area].update(self.labels.themes_of(c.themes))
        return {area: _sorted(counts) for area, counts in sorted(themes.items()) if counts}


def _sorted(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _received(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
    if not b.period.contains(moment) or body["subject"] in b.complaints:
        return
    data = body["data"]
    procedure = str(data.get("procedure") or b.book.default)
    order = stage_order(b.book, procedure)
    stage = order.serious_stage if data.get("serious") and order.serious_stage else str(data["stage"])
    b.complaints[str(body["subject"])] = Complaint(b.labels.service_area(data["service_area"]), procedure, stage,
                                                  list(data.get("themes") or []))


def _deadline(b: ReportBuilder, body: dict[str, Any]) -> tuple[Deadline, datetime] | None:
    if body.get("source") != ESCALATION:  # escalation's complaint deadlines, not learning's
        return None
    data = body["data"]
    key = (str(body["subject"]), str(data["stage"]), str(data["kind"]))
    return b.deadlines.setdefault(key, Deadline()), parse_time(str(data["due"]))


def _scheduled(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
    if (found := _deadline(b, body)) is None:
        return
    d, due = found
    if d.due is not None and due != d.due:
        d.breached = False  # an agreed extension: the old target's breach no longer decides it
    d.due = due


def _met(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
    if (found := _deadline(b, body)) is not None:
        found[0].due, found[0].met_at = found[1], moment


def _breached(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
    if (found := _deadline(b, body)) is None:
        return
    d, due = found
    if d.due is None or due == d.due:
        d.due, d.breached = due, True


def _withdrawn(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
    """A breach withdrawn (contract 11.2): an act recorded after it met the target in time, so it is not a miss."""
    if (found := _deadline(b, body)) is None:
        return
    d, due = found
    if d.due == due:
        d.breached = False
        d.met_at = d.met_at or parse_time(str(body["data"]["met_at"]))


def _compliment(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
    if b.period.contains(moment):
        b.compliments[b.labels.service_area(body["data"]["service_area"])] += 1


def _learning(kind: str) -> Any:
    def handle(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
        if not b.period.contains(moment):
            return
        b.learning[kind] += 1
        if kind == "completed" and not body["data"].get("late"):
            b.learning["on_time"] += 1
    return handle


def _survey_defined(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
    b.surveys[str(body["subject"])] = list(body["data"]["questions"])


def _survey_response(b: ReportBuilder, body: dict[str, Any], moment: datetime) -> None:
    if not b.period.contains(moment):
        return
    data = body["data"]
    survey = b.surveys.get(str(data["survey_id"]))
    if survey is None:
        return
    respondent = b.labels.respondent_type(data["respondent_type"])
    for q in survey:
        answer = data["answers"].get(q["question_id"])
        if answer is None:
            continue
        counts = b.answers[(str(data["survey_id"]), str(q["question_id"]), respondent)]
        counts[0] += 1
        counts[1] += is_positive(answer, positive_keys(q["positive"]))


# Event type -> what it changes in the report; every other type leaves the report as it is.
HANDLERS = {
    "complaint.received": _received,
    "deadline.scheduled": _scheduled,
    "deadline.met": _met,
    "deadline.breached": _breached,
    "deadline.breach_withdrawn": _withdrawn,
    "compliment.received": _compliment,
    "survey.defined": _survey_defined,
    "survey.response.submitted": _survey_response,
}


def build_report(bodies: Iterable[dict[str, Any]], period: Period, book: ProcedureBook,
                 labels: LabelValues) -> dict[str, Any]:
    """The period report from history events in history order."""
    return ReportBuilder(period, book, labels).add_all(bodies).result()
