"""The SPSO complaints performance indicators (contract section 10): a pure fold over the history's events.

Cases are read through the one judgement (`services.cases.rules.judge`, contract 11.1), as the period
report reads them: an act recorded under contract 1.1 that the judgement refuses (an escalation to a
stage the procedure lacks, a response at a stage the case is not at) is skipped, and each case's stage,
outcome and closure are its `Story`'s. The indicators cover the cases of the procedures whose file
names `model: spso` (listed in the output's `procedures`); cases of any other procedure (Dundee's 2011
procedure, counted in calendar days; England's) are in no indicator and are counted apart, per
procedure, in `left_out` (received and closed in the period, by the same rules).

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
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from schemas.times import event_time
from services.audit.report import Period
from services.cases import rules
from services.cases.story import JUDGED_TYPES, Case, Refusal, Story, act_of
from services.common.figures import OUTCOMES, rate
from services.deadlines.procedures import Procedure, ProcedureBook

BUCKETS = ("stage1", "stage2", "escalated")
MODEL = "spso"  # the procedures' `model` whose cases the indicators count


def covered(book: ProcedureBook) -> list[str]:
    """The ids of the procedures the indicators cover: those whose current file names `model: spso`."""
    return [i for i in book.ids() if (p := book.current(i)) is not None and p.model == MODEL]


def bucket(story: Story, procedure: Procedure) -> str:
    """`stage1`, `stage2` or `escalated` (contract section 10), from the stages the case's story passed."""
    first = procedure.stages[0].id
    if story.stage == first:
        return "stage1"
    return "escalated" if story.visits[0].stage == first else "stage2"


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
    cases: dict[str, Case] = field(default_factory=dict)  # every case's story, from its admitted acts

    def add(self, body: dict[str, Any]) -> None:
        """Take one event into account: a case act the judgement admits (acts after the period's end are
        ignored, and so is every other type)."""
        if body.get("type") not in JUDGED_TYPES:
            return
        moment = event_time(body)
        act = act_of(body, moment)
        if act is None or moment > self.period.last_instant:
            return
        subject = str(body["subject"])
        told = rules.judge(self.cases.get(subject, Case()), act, self.book)
        if not isinstance(told, Refusal):
            self.cases[subject] = told

    def add_all(self, bodies: Iterable[dict[str, Any]]) -> IndicatorBuilder:
        """Take every event into account; returns self for chaining."""
        for body in bodies:
            self.add(body)
        return self

    def stories(self) -> list[tuple[Story, Procedure]]:
        """Every received case's story with the procedure version it keeps."""
        return [(c.story, self.book.get(c.story.procedure)) for c in self.cases.values() if c.story is not None]

    def closes(self, story: Story) -> bool:
        """Whether the response that ends the case (its current stage's) was given in the period."""
        responded = story.visit.responded
        return responded is not None and self.period.contains(responded)

    def closures(self) -> list[Closure]:
        """The complaints of the covered procedures closed in the period."""
        ids = set(covered(self.book))
        return [_closure(s, p) for s, p in self.stories() if p.id in ids and self.closes(s)]

    def result(self) -> dict[str, Any]:
        """The indicators as contract section 10's JSON, plus the procedures covered and those left out."""
        closed = self.closures()
        received = self._received()
        by_bucket = {b: [c for c in closed if c.bucket == b] for b in BUCKETS}
        return {
            "period": {"from": self.period.start.isoformat(), "to": self.period.end.isoformat()},
            "population": self.population,
            "received": {"total": received, "per_1000": self._per_1000(received)},
            "closed": {"total": len(closed), "per_1000": self._per_1000(len(closed)),
                       **{b: _share(len(cs), len(closed)) for b, cs in by_bucket.items()}},
            "outcomes": {b: {o: _share(sum(c.outcome == o for c in cs), len(cs)) for o in OUTCOMES}
                         for b, cs in by_bucket.items()},
            "average_working_days": {b: one_place(sum(c.working_days for c in cs), len(cs))
                                     for b, cs in by_bucket.items()},
            "within_timescale": {b: _share(sum(c.within for c in cs), len(cs)) for b, cs in by_bucket.items()},
            "extended": {b: _share(sum(c.extended for c in cs), len(cs)) for b, cs in by_bucket.items()},
            "procedures": covered(self.book),
            "left_out": self._left_out(),
        }

    def _received(self) -> int:
        ids = set(covered(self.book))
        return sum(p.id in ids and self.period.contains(s.received) for s, p in self.stories())

    def _left_out(self) -> dict[str, dict[str, int]]:
        """Per procedure the indicators do not cover: its complaints received and closed in the period."""
        ids = set(covered(self.book))
        out: dict[str, dict[str, int]] = {}
        for s, p in self.stories():
            if p.id in ids:
                continue
            counts = out.setdefault(p.id, {"received": 0, "closed": 0})
            counts["received"] += self.period.contains(s.received)
            counts["closed"] += self.closes(s)
        return {i: c for i, c in sorted(out.items()) if c["received"] or c["closed"]}

    def _per_1000(self, count: int) -> float | None:
        return one_place(count * 1000, self.population) if self.population else None


def _share(count: int, denominator: int) -> dict[str, Any]:
    return {"count": count, "share": rate(count, denominator)}


def _closure(story: Story, procedure: Procedure) -> Closure:
    """The closing stage's figures: working days from its start to its response, against its own timescale."""
    visit = story.visit
    assert visit.responded is not None
    calendar = procedure.case_calendar()
    start, end = calendar.local_date(visit.entered), calendar.local_date(visit.responded)
    stage = procedure.stage(visit.stage)
    timescale = stage.timescales() if stage is not None else []
    within = all(end <= calendar.add_period(start, n, unit) for kind, n, unit in timescale if kind == "respond")
    return Closure(bucket(story, procedure), str(visit.outcome), calendar.days_between(start, end), within,
                   visit.extended_to is not None)


def build_indicators(bodies: Iterable[dict[str, Any]], period: Period, book: ProcedureBook,
                     population: int | None = None) -> dict[str, Any]:
    """The period's SPSO indicators from history events in history order."""
    return IndicatorBuilder(period, book, population).add_all(bodies).result()
