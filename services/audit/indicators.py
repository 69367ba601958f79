"""The SPSO complaints performance indicators (contract section 10): a pure fold over the history's events.

Definitions, each with its denominator (docs/indicators.md sets them beside the period report's):
- `received`: complaints whose `complaint.received` falls in the period; per 1,000 of the population.
- Everything else counts complaints **closed** in the period, as the history stood at its end: a
  complaint is closed by the response given at the stage it has reached (the first stage's response
  when it was not escalated, else the later stage's); a response later followed by an escalation
  (by the period's end) does not close it. Withdrawn complaints have no closing response.
- Buckets, by the case's procedure: `stage1` closed at the procedure's first stage; `stage2` started
  beyond it (serious, or taken there on receipt) and closed there; `escalated` escalated from the
  first stage (after its response, or before one) and closed at a later stage. Shares are over all
  closed complaints.
- Outcomes of a bucket: over the complaints closed in that bucket.
- Working days: counting days of the case's procedure calendar after the day of receipt (for
  `escalated`, after the day of the escalation) up to and including the day of the closing response.
- Within timescale: closed by the last day of the closing stage's own respond period (SPSO: 5
  working days at stage 1, 20 at stage 2), ignoring any extension; over the bucket's closed complaints.
- Extended: closed complaints of the bucket with an agreed extension at the closing stage; over the
  bucket's closed complaints.
Shares are `figures.rate` (three places, null over 0); `per_1000` and averages one place, half up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from schemas.times import event_time
from services.audit.report import Period
from services.common.figures import OUTCOMES, rate
from services.deadlines.procedures import Procedure, ProcedureBook

BUCKETS = ("stage1", "stage2", "escalated")


@dataclass
class Case:
    """What the indicators need of one complaint."""

    procedure: Procedure
    stage: str
    started: datetime  # receipt, or the latest escalation
    escalated: bool = False
    closing: tuple[datetime, str] | None = None  # the current stage's response: time and outcome
    extended: set[str] = field(default_factory=set)  # stages with an agreed extension

    @property
    def first_stage(self) -> str:
        return self.procedure.stages[0].id

    def bucket(self) -> str:
        """`stage1`, `stage2` or `escalated` (contract section 10)."""
        if self.stage == self.first_stage:
            return "stage1"
        return "escalated" if self.escalated else "stage2"


@dataclass(frozen=True)
class Closure:
    """One complaint closed in the period."""

    bucket: str
    outcome: str
    working_days: int
    within: bool
    extended: bool


def one_place(numerator: int, denominator: int) -> float | None:
    """numerator / denominator to one decimal place, half up; None over 0."""
    if not denominator:
        return None
    return float((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


@dataclass
class IndicatorBuilder:
    """Folds history events (bodies, in history order) into the period's indicators."""

    period: Period
    book: ProcedureBook
    population: int | None = None
    cases: dict[str, Case] = field(default_factory=dict)
    received: int = 0

    def add(self, body: dict[str, Any]) -> None:
        """Take one event into account (events after the period's end are ignored)."""
        moment = event_time(body)
        handler = HANDLERS.get(str(body.get("type")))
        if handler is not None and moment <= self.period.last_instant:
            handler(self, body, moment)

    def add_all(self, bodies: Iterable[dict[str, Any]]) -> IndicatorBuilder:
        """Take every event into account; returns self for chaining."""
        for body in bodies:
            self.add(body)
        return self

    def closures(self) -> list[Closure]:
        """The complaints closed in the period."""
        return [_closure(c) for c in self.cases.values()
                if c.closing is not None and self.period.contains(c.closing[0])]

    def result(self) -> dict[str, Any]:
        """The indicators as contract section 10's JSON."""
        closed = self.closures()
        by_bucket = {b: [c for c in closed if c.bucket == b] for b in BUCKETS}
        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "population": self.population,
            "received": {"total": self.received, "per_1000": self._per_1000(self.received)},
            "closed": {"total": len(closed), "per_1000": self._per_1000(len(closed)),
                       **{b: _share(len(cs), len(closed)) for b, cs in by_bucket.items()}},
            "outcomes": {b: {o: _share(sum(c.outcome == o for c in cs), len(cs)) for o in OUTCOMES}
                         for b, cs in by_bucket.items()},
            "average_working_days": {b: one_place(sum(c.working_days for c in cs), len(cs))
                                     for b, cs in by_bucket.items()},
            "within_timescale": {b: _share(sum(c.within for c in cs), len(cs)) for b, cs in by_bucket.items()},
            "extended": {b: _share(sum(c.extended for c in cs), len(cs)) for b, cs in by_bucket.items()},
        }

    def _per_1000(self, count: int) -> float | None:
        return one_place(count * 1000, self.population) if self.population else None


def _share(count: int, denominator: int) -> dict[str, Any]:
    return {"count": count, "share": rate(count, denominator)}


def _closure(case: Case) -> Closure:
    assert case.closing is not None
    at, outcome = case.closing
    calendar = case.procedure.case_calendar()
    start, end = calendar.local_date(case.started), calendar.local_date(at)
    stage = case.procedure.stage(case.stage)
    timescale = stage.timescales() if stage is not None else []
    within = all(end <= calendar.add_period(start, n, unit) for kind, n, unit in timescale if kind == "respond")
    return Closure(case.bucket(), outcome, calendar.days_between(start, end), within, case.stage in case.extended)


def _received(b: IndicatorBuilder, body: dict[str, Any], moment: datetime) -> None:
    subject, data = str(body["subject"]), body["data"]
    procedure = b.book.current(data.get("procedure"))
    if subject in b.cases or procedure is None:
        return
    stage = procedure.serious_stage if data.get("serious") else str(data["stage"])
    b.cases[subject] = Case(procedure, stage, moment)
    b.received += b.period.contains(moment)


def _escalated(b: IndicatorBuilder, body: dict[str, Any], moment: datetime) -> None:
    case = b.cases.get(str(body["subject"]))
    if case is None:
        return
    case.escalated = case.escalated or case.stage == case.first_stage
    case.stage, case.started, case.closing = str(body["data"]["to_stage"]), moment, None


def _responded(b: IndicatorBuilder, body: dict[str, Any], moment: datetime) -> None:
    case = b.cases.get(str(body["subject"]))
    if case is not None and body["data"].get("stage") == case.stage:
        case.closing = (moment, str(body["data"]["outcome"]))


def _extended(b: IndicatorBuilder, body: dict[str, Any], moment: datetime) -> None:
    case = b.cases.get(str(body["subject"]))
    if case is not None:
        case.extended.add(str(body["data"]["stage"]))


# Event type -> what it changes in the indicators; every other type leaves them as they are.
HANDLERS = {
    "complaint.received": _received,
    "complaint.escalated": _escalated,
    "complaint.responded": _responded,
    "complaint.extension_agreed": _extended,
}


def build_indicators(bodies: Iterable[dict[str, Any]], period: Period, book: ProcedureBook,
                     population: int | None = None) -> dict[str, Any]:
    """The period's SPSO indicators from history events in history order."""
    return IndicatorBuilder(period, book, population).add_all(bodies).result()
