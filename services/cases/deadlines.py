"""The deadlines a case's story implies: computed from its acts and its procedure alone (contract 11.3).

What `report` counts, so that a figure never depends on whether a service has derived an event yet: a
deadline that fell due in the period and was not met counts as not met whether or not its breach has
been recorded. The arithmetic is the deadline mechanism's (`services.deadlines.calendar`): a stage's
deadlines run from the moment the case entered it; an agreed extension makes the agreed date's end the
respond target; a suspension moves each deadline of the stage later by the counting days the clock
stood still, and a deadline of a stage suspended now does not fall due; a response also acknowledges;
an escalation, withdrawal or closure ends the stage's unmet deadlines (those that had already fallen due
stay missed). Learning stages are due `learning.days` counting days after the closure that opened them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from services.cases.story import Story, Visit
from services.deadlines.procedures import Procedure, ProcedureBook


class StoryDeadline(NamedTuple):
    """One deadline of a case: its stage and kind, its target, and when its act met it (None: not met)."""

    stage: str
    kind: str  # acknowledge, respond or learning
    due: datetime
    met_at: datetime | None
    ended_at: datetime | None  # when the stage ended unmet (escalated, withdrawn, closed), if it did
    running: bool = False  # the stage's clock is stopped now: it does not fall due

    def settled_at(self) -> tuple[datetime, bool] | None:
        """When the deadline counts and whether it was met (`services.common.figures.settled`), or None while
        it runs or when it ended unmet before it fell due."""
        if self.met_at is not None:
            return (self.met_at, True) if self.met_at <= self.due else (self.due, False)
        if self.running or (self.ended_at is not None and self.ended_at < self.due):
            return None
        return self.due, False


def case_deadlines(story: Story, book: ProcedureBook) -> Iterator[StoryDeadline]:
    """Every complaint and learning deadline of the case, in stage order."""
    procedure = book.get(story.procedure)
    for index, visit in enumerate(story.visits):
        later = story.visits[index + 1].entered if index + 1 < len(story.visits) else None
        yield from _stage_deadlines(procedure, visit, _ended(story, visit, later))
    calendar = procedure.learning_calendar()
    for stage in story.learning:
        due, _ = calendar.deadline_after(stage.opened, procedure.learning.days, procedure.warning_lead)
        yield StoryDeadline("learning", "learning", due, stage.submitted, None)


def _ended(story: Story, visit: Visit, later: datetime | None) -> datetime | None:
    """When the visit ended without its response: the next stage's start, or the withdrawal or closure."""
    if later is not None:
        return later
    ends = [t for t in (story.withdrawn, story.closed) if t is not None]
    return min(ends) if ends else None


def _stage_deadlines(procedure: Procedure, visit: Visit, ended: datetime | None) -> Iterator[StoryDeadline]:
    spec = procedure.stage(visit.stage)
    if spec is None:
        return
    calendar = procedure.case_calendar()
    for kind, amount, unit in spec.timescales():
        due, _ = calendar.deadline_after(visit.entered, amount, procedure.warning_lead, unit)
        if kind == "respond" and visit.extended_to is not None:
            due = calendar.end_of(visit.extended_to)
        stopped_since = visit.suspended_at
        if visit.stopped_days:
            due = calendar.end_of(calendar.shift(calendar.local_date(due), visit.stopped_days))
        met = visit.responded if kind == "respond" else _first(visit.acknowledged, visit.responded)
        running = stopped_since is not None and met is None and due > stopped_since
        yield StoryDeadline(visit.stage, kind, due, met, ended if met is None else None, running)


def _first(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(t for t in (a, b) if t is not None) if (a or b) else None
