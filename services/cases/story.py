"""A case's story: what its admitted acts say, folded in the order of their `time` (contract 11.1).

Pure (no driver, no clock). `Case` is a case's admitted acts in time order with the `Story` they fold
to; `services.cases.rules` judges a new act against it and folds it in. The story's `status` is the
one definition of where a case stands that every output uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, NamedTuple

STATUSES = ("open", "suspended", "responded", "closed", "withdrawn")
# The statuses `cases` lists, and those `casefeedback_complaints_open` counts.
WORKLIST_STATUSES = frozenset({"open", "suspended", "responded"})
OPEN_STATUSES = frozenset({"open", "suspended"})
DECIDED = ("upheld", "partially_upheld", "not_upheld", "resolved")

# The `data` fields each judged type keeps: what the rules read, never free text or a person's reference.
KEPT: dict[str, tuple[str, ...]] = {
    "complaint.received": ("stage", "serious", "procedure", "service_area"),
    "complaint.acknowledged": ("stage",),
    "complaint.extension_agreed": ("stage", "new_due"),
    "complaint.responded": ("stage", "outcome"),
    "complaint.escalated": ("to_stage",),
    "complaint.withdrawn": ("stage",),
    "complaint.closed": (),
    "complaint.suspended": ("stage", "reason"),
    "complaint.resumed": ("stage",),
    "learning.action.added": ("action_id",),
    "learning.action.completed": ("action_id",),
    "learning.plan.submitted": (),
}
JUDGED_TYPES = frozenset(KEPT)


class Refusal(NamedTuple):
    """Why an act may not enter its case's story: a dead-letter reason and a detail naming the rule."""

    reason: str  # not_allowed or inconsistent
    detail: str


@dataclass(frozen=True, slots=True)
class Act:
    """One inbound act of a case, as much of it as the rules read."""

    type: str
    id: str
    time: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        """A kept field of `data` (None where absent)."""
        return self.data.get(name)

    def to_json(self) -> dict[str, Any]:
        """The act as JSON-ready data (what intake keeps per case)."""
        return {"type": self.type, "id": self.id, "time": self.time.isoformat(), "data": dict(self.data)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Act:
        """The inverse of `to_json`."""
        return cls(str(data["type"]), str(data["id"]), datetime.fromisoformat(str(data["time"])), data["data"])


def act_of(body: Mapping[str, Any], time: datetime) -> Act | None:
    """The act an event body is (None for a type the story does not judge); `time` is its parsed `time`."""
    kept = KEPT.get(str(body.get("type")))
    if kept is None:
        return None
    data = body.get("data") or {}
    return Act(str(body["type"]), str(body["id"]), time, {k: data[k] for k in kept if k in data})


@dataclass(frozen=True, slots=True)
class Visit:
    """One stage of a case as it was entered (a stage may be entered once)."""

    stage: str
    entered: datetime
    acknowledged: datetime | None = None
    responded: datetime | None = None
    outcome: str | None = None
    extended_to: date | None = None
    suspended_at: datetime | None = None
    stopped_days: int = 0  # counting days the stage's clock stood still (suspensions that ended)


@dataclass(frozen=True, slots=True)
class LearningStage:
    """The learning stage a closure opened."""

    opened: datetime
    actions: frozenset[str] = frozenset()
    completed: frozenset[str] = frozenset()
    submitted: datetime | None = None


@dataclass(frozen=True, slots=True)
class Story:
    """What a case's admitted acts say: its procedure, the stages it passed, where it stands."""

    received_id: str
    procedure: str  # the procedure key (id@version#hash) the case keeps
    service_area: str
    received: datetime
    visits: tuple[Visit, ...]
    closed: datetime | None = None
    withdrawn: datetime | None = None
    learning: tuple[LearningStage, ...] = ()

    @property
    def visit(self) -> Visit:
        """The current stage's visit."""
        return self.visits[-1]

    @property
    def stage(self) -> str:
        """The current stage."""
        return self.visits[-1].stage

    @property
    def stages(self) -> tuple[str, ...]:
        """Every stage the case entered, in order."""
        return tuple(v.stage for v in self.visits)

    @property
    def status(self) -> str:
        """Exactly one of `STATUSES` (contract 11.1)."""
        if self.withdrawn is not None:
            return "withdrawn"
        if self.closed is not None:
            return "closed"
        if self.visit.suspended_at is not None:
            return "suspended"
        return "responded" if self.visit.responded is not None else "open"

    @property
    def outcome(self) -> str | None:
        """The outcome of the current stage's response (None while it is unanswered: an escalation reopens)."""
        return self.visit.outcome

    @property
    def open_learning(self) -> LearningStage | None:
        """The latest learning stage while its plan is not submitted."""
        if self.learning and self.learning[-1].submitted is None:
            return self.learning[-1]
        return None

    def with_visit(self, visit: Visit) -> Story:
        """The story with its current visit replaced."""
        return replace(self, visits=(*self.visits[:-1], visit))


@dataclass(frozen=True, slots=True)
class Case:
    """A case's admitted acts in time order and the story they fold to (None before its receipt)."""

    acts: tuple[Act, ...] = ()
    story: Story | None = field(default=None, compare=False)  # follows from the acts (folded lazily)

    @property
    def status(self) -> str | None:
        """The story's status (None while the case is unknown)."""
        return self.story.status if self.story is not None else None
