"""Learning's pure domain: a learning stage after every closure, its action plan and its deadline.

Contract for `casefeedback replay` (same shape as `services.escalation.domain`): call
`decide(state, body, book)` for every history event of a subject in seq order (state None at
first); it fires the case's learning timers due by the event's `time`, then applies the event,
and returns the new state, the derived bodies (deterministic ids) and a refusal: only a closure
dated where no calendar counts (`inconsistent`); early events are held, not refused. Live and replay
call it through `timers.decide_safely`. `fire_due(state, until)` fires what is due. Recorded
`deadline.warning` / `learning.stage.overdue` events of this service mark the firing as done.

Rules (seed 004): every `complaint.closed` after the complaint was received or reopened
(`complaint.escalated`) opens a new learning stage due `learning.days` counted in the procedure's
learning calendar from the closure; earlier stages stay in the record. Actions and plan
submissions apply to the latest open stage; with no open stage they are *held* in the state and
retried after each later event of the case (the worker dead-letters held events as
`out_of_order` once the grace time has passed by the wall clock and drops them from the state;
that drop is not in the history, so a replay keeps them held: the one place replay can differ).

A late act corrects what it contradicts (contract 11.2): learning's breach is `learning.stage.overdue`.
A `learning.plan.submitted` that meets the open stage, dated on or before its due instant but applied
after the overdue was recorded (the tick raised it while the form was on its way), completes the stage
with `late: false` and derives a `deadline.breach_withdrawn` naming the overdue event. A plan dated after
the due instant withdraws nothing. `decide(..., lateness)` takes the declared lateness per inbound source
(the `complaint.received`'s `source`): the case's learning deadlines are overdue only once it has passed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple, TypeAlias

from schemas.times import event_time
from services.cases.story import Case
from services.deadlines import timers
from services.deadlines.calendar import uncountable
from services.deadlines.judged import decide_judged
from services.deadlines.procedures import ProcedureBook
from services.deadlines.timers import Deadline

SOURCE = "casefeedback/learning"
STAGE = "learning"
KIND = "learning"
FIRING_TYPES = {"warning": "deadline.warning", "breach": "learning.stage.overdue"}
HELD_TYPES = ("learning.action.added", "learning.action.completed", "learning.plan.submitted")


# The state's records are immutable named tuples: cheap to remake for every history event.
class Action(NamedTuple):
    """One action of a learning plan."""

    action_id: str
    level: str
    completed: bool = False


class LearningStage(NamedTuple):
    """One learning stage, opened by one closure."""

    deadline: Deadline
    opened: datetime
    actions: tuple[Action, ...] = ()
    submitted: datetime | None = None
    incomplete_actions: int | None = None

    @property
    def is_open(self) -> bool:
        return self.submitted is None


class CaseLearning(NamedTuple):
    """What learning knows of one complaint."""

    subject: str
    procedure: str
    service_area: str
    closed: bool = False
    stages: tuple[LearningStage, ...] = ()
    held: tuple[dict[str, Any], ...] = ()
    case: Case = Case()  # the case's story (`services.cases`): what its admitted acts say
    lateness: timedelta = timers.ON_TIME  # its source's declared lateness (contract 11.2)

    def open_stage(self) -> LearningStage | None:
        """The latest stage if it is still open."""
        return self.stages[-1] if self.stages and self.stages[-1].is_open else None

    def deadlines(self) -> list[Deadline]:
        """Every learning stage's deadline (the timer rows)."""
        return [s.deadline for s in self.stages]

    def with_stages(self, stages: tuple[LearningStage, ...], closed: bool | None = None) -> CaseLearning:
        """The same case with these stages (and closure flag), built directly: `decide` runs per history event."""
        return CaseLearning(self.subject, self.procedure, self.service_area, self.closed if closed is None else closed,
                            stages, self.held, self.case, self.lateness)


# Decisions are built as `timers.Decision(...)`: calling the subscripted alias costs a typing call per event.
Decision: TypeAlias = timers.Decision[CaseLearning]


def _emit(state: CaseLearning, type_: str, d: Deadline, at: datetime, data: dict[str, Any] | None = None,
          **extra: Any) -> dict[str, Any]:
    return timers.deadline_event(SOURCE, type_, state.subject, at, d, data, **extra)


def _with_latest(state: CaseLearning, stage: LearningStage) -> CaseLearning:
    return state.with_stages((*state.stages[:-1], stage))


def fire_due(state: CaseLearning, until: datetime) -> tuple[CaseLearning, list[dict[str, Any]]]:
    """Warn and mark overdue every learning deadline due at or before `until`."""
    if not timers.any_due((s.deadline for s in state.stages), until):  # nothing due: the state stands as it is
        return state, []
    fired = timers.fire_all(state.deadlines(), until)
    stages = tuple(s._replace(deadline=d) for s, d in zip(state.stages, fired.deadlines, strict=True))
    new = state.with_stages(stages)
    out = []
    for d, kind, at in fired.firings:
        data = None if kind == "warning" else {"due": d.due.isoformat()}  # None: the deadline's own data
        out.append(_emit(new, FIRING_TYPES[kind], d, at, data))
    return new, out


def on_received(state: CaseLearning | None, body: dict[str, Any], book: ProcedureBook,
                lateness: Mapping[str, timedelta] = timers.NO_LATENESS) -> Decision:
    """Know the case's procedure (for its learning calendar), service area and its source's declared lateness."""
    data = body["data"]
    procedure = book.current(data.get("procedure"))
    if (state is not None and state.procedure) or procedure is None:
        return timers.Decision(state)
    held = state.held if state is not None else ()
    return timers.Decision(CaseLearning(str(body["subject"]), procedure.key, str(data["service_area"]), held=held,
                                        lateness=timers.lateness_of(lateness, body.get("source"))))


def on_closed(state: CaseLearning, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """A closure (the first, or after a reopening) opens a learning stage with its deadline."""
    if state.closed or not state.procedure:
        return timers.Decision(state)
    too_far = uncountable("complaint.closed", at.date())
    if too_far:
        return timers.Decision(state, refusal=too_far, reason="inconsistent")
    procedure = book.get(state.procedure)
    calendar = procedure.learning_calendar()
    due, warn_at = calendar.deadline_after(at, procedure.learning.days, procedure.warning_lead)
    deadline = timers.schedule(STAGE, KIND, len(state.stages) + 1, due, warn_at, at, state.lateness)
    state = state.with_stages((*state.stages, LearningStage(deadline, at)), closed=True)
    return timers.Decision(state, [_emit(state, "learning.stage.opened", deadline, at, {"due": due.isoformat()}),
                                   _emit(state, "deadline.scheduled", deadline, at)])


def on_reopened(state: CaseLearning, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """An escalation after closure reopens the complaint: its next closure opens a new stage."""
    return timers.Decision(state.with_stages(state.stages, closed=False))


def on_action_added(state: CaseLearning, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision | None:
    """Add an action to the open stage's plan (None: no open stage, hold it)."""
    stage, data = state.open_stage(), body["data"]
    if stage is None:
        return None
    if any(a.action_id == data["action_id"] for a in stage.actions):
        return timers.Decision(state)
    action = Action(str(data["action_id"]), str(data["level"]))
    return timers.Decision(_with_latest(state, stage._replace(actions=(*stage.actions, action))))


def on_action_completed(state: CaseLearning, body: dict[str, Any], at: datetime,
                        book: ProcedureBook) -> Decision | None:
    """Mark an action of the open stage completed (None: not known yet, hold it)."""
    stage, action_id = state.open_stage(), body["data"]["action_id"]
    if stage is None or not any(a.action_id == action_id for a in stage.actions):
        return None
    actions = tuple(a._replace(completed=True) if a.action_id == action_id else a for a in stage.actions)
    return timers.Decision(_with_latest(state, stage._replace(actions=actions)))


def on_plan_submitted(state: CaseLearning, body: dict[str, Any], at: datetime,
                      book: ProcedureBook) -> Decision | None:
    """The plan is returned: the stage completes (late or not), incomplete actions recorded."""
    stage = state.open_stage()
    if stage is None:
        return None
    met = timers.meet(stage.deadline, at)
    incomplete = sum(not a.completed for a in stage.actions)
    state = _with_latest(state, LearningStage(met, stage.opened, stage.actions, at, incomplete))
    late = bool(met.late)
    derived = [_emit(state, "learning.stage.completed", met, at, {"due": met.due.isoformat(), "late": late}),
               _emit(state, "deadline.met", met, at, late=late)]
    if timers.withdraws(stage.deadline, met):  # the overdue was raised before this in-time plan was recorded
        derived.append(timers.breach_withdrawn(SOURCE, FIRING_TYPES["breach"], state.subject, met))
    return timers.Decision(state, derived)


def on_recorded_firing(state: CaseLearning, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """A warning or overdue event the history shows this service raised: mark it fired."""
    if body.get("source") != SOURCE:
        return timers.Decision(state)
    due, overdue = datetime.fromisoformat(str(body["data"]["due"])), body["type"] == "learning.stage.overdue"
    stages = tuple(s._replace(deadline=s.deadline.fired(overdue)) if s.deadline.due == due and s.deadline.is_open
                   else s for s in state.stages)
    return timers.Decision(state.with_stages(stages))


# A handler takes the case, the event's body and its time (read once per event), and the procedures.
Handler = Callable[[CaseLearning, dict[str, Any], datetime, ProcedureBook], Decision | None]

# The table of contents: event type -> what it does to a known case (None from a handler: hold).
HANDLERS: dict[str, Handler] = {
    "complaint.closed": on_closed,
    "complaint.escalated": on_reopened,
    "learning.action.added": on_action_added,
    "learning.action.completed": on_action_completed,
    "learning.plan.submitted": on_plan_submitted,
    "deadline.warning": on_recorded_firing,
    "learning.stage.overdue": on_recorded_firing,
}


def _apply(state: CaseLearning, body: dict[str, Any], at: datetime, book: ProcedureBook) -> tuple[Decision, bool]:
    decision = HANDLERS[str(body["type"])](state, body, at, book)
    if decision is None:
        return timers.Decision(state), False
    return decision, True


def _retry_held(state: CaseLearning, book: ProcedureBook) -> Decision:
    derived: list[dict[str, Any]] = []
    progress = True
    while progress and state.held:
        progress = False
        for held in state.held:
            decision, done = _apply(state._replace(held=()), held, event_time(held), book)
            if done and decision.state is not None:
                rest = tuple(h for h in state.held if h is not held)
                state, progress = decision.state._replace(held=rest), True
                derived += decision.derived
                break
    return timers.Decision(state, derived)


def decide(state: CaseLearning | None, body: dict[str, Any], book: ProcedureBook,
           lateness: Mapping[str, timedelta] = timers.NO_LATENESS) -> Decision:
    """Apply one history event to a case (see the module docstring for the contract)."""
    return decide_judged(partial(_decide, lateness=lateness) if lateness else _decide, state, body, book)


def _decide(state: CaseLearning | None, body: dict[str, Any], book: ProcedureBook,
            lateness: Mapping[str, timedelta] = timers.NO_LATENESS) -> Decision:
    type_ = str(body.get("type"))
    if type_ == "complaint.received":
        return on_received(state, body, book, lateness)
    if type_ not in HANDLERS:
        return timers.Decision(state)
    if state is None:
        if type_ not in HELD_TYPES:
            return timers.Decision(None)
        state = CaseLearning(str(body["subject"]), "", "")
    at = event_time(body)
    state, fired = fire_due(state, at)
    decision, done = _apply(state, body, at, book)
    assert decision.state is not None
    if decision.refusal:
        return timers.Decision(state, fired, decision.refusal, decision.reason)
    if not done:
        return timers.Decision(state._replace(held=(*state.held, body)), fired)
    if not decision.state.held:  # the common case: nothing waits for this event
        return timers.Decision(decision.state, fired + decision.derived) if fired else decision
    retried = _retry_held(decision.state, book)
    assert retried.state is not None
    return timers.Decision(retried.state, fired + decision.derived + retried.derived)


def drop_held(state: CaseLearning) -> tuple[CaseLearning, list[dict[str, Any]]]:
    """The state without its held events, and those events (to dead-letter as out_of_order)."""
    return state._replace(held=()), list(state.held)
