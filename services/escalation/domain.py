"""Escalation's pure domain: a complaint's stage and deadlines, decided from its history.

What the live worker and `casefeedback replay` both run (declared in `projection.py`); replay
rebuilds the state in memory from the history in seq order and compares it with the live tables:

- Call `decide(state, body, book)` for every history event of a subject, in seq order, with
  `state=None` before the case's first event. It returns the new state (None while the case is
  unknown), the derived event bodies (deterministic ids: the live service appended exactly these),
  and a refusal text with its reason when the procedure forbids the event (`not_allowed`) or the
  event cannot happen in the case's story (`inconsistent`: an agreed date before the stage started,
  a date no calendar counts); live sends it as a dead letter and leaves the state unchanged.
  Both live and replay call it through `timers.decide_safely`, which turns a step that raises into
  a refusal of that one event.
- `decide` first fires the case's timers due at or before the event's `time` (`fire_due`), then
  applies the event. Recorded `deadline.warning`/`deadline.breached` events from this service
  are inputs too: they mark the deadline fired at the moment the history shows, which is how
  live and replay stay equal when the live tick fired before a late-arriving event (the tick
  only fires once every history event of the case has been applied; see `worker.py`).
- `fire_due(state, until)` fires what is due at or before `until` (live: the wall clock).
- `complaint.suspended` stops the current stage's clock where its procedure lists the reason (its open
  deadlines become `suspended`: no warning, no breach); `complaint.resumed`, or an acknowledgement or
  response of the stage, restarts it, moving each such deadline later by the counting days it stood
  still (a new `deadline.scheduled`). Escalation, withdrawal and closure end suspended deadlines too.
- A late act corrects what it contradicts (contract 11.2): an acknowledgement or response recorded after a
  breach but dated on or before the due instant meets the deadline with `late: false` and derives a
  `deadline.breach_withdrawn` naming the breach (`timers.breach_withdrawn`).
- `decide(..., lateness)` takes the operator's declared lateness per inbound `source` (data, from the
  settings, as the book is): the deadlines of a case whose `complaint.received` came from such a source
  breach only once that lateness has passed after their due instant (`timers.Deadline.lateness`); every
  later stage of the case keeps it.
- Neither reads the clock; both are deterministic in their arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple, TypeAlias

from schemas.times import event_time
from services.cases.rules import STAGE_ACTS
from services.cases.story import Case
from services.deadlines import timers
from services.deadlines.calendar import uncountable
from services.deadlines.judged import decide_judged
from services.deadlines.procedures import Procedure, ProcedureBook
from services.deadlines.timers import Deadline

SOURCE = "casefeedback/escalation"
FIRING_TYPES = {"warning": "deadline.warning", "breach": "deadline.breached"}


class CaseState(NamedTuple):
    """What escalation knows of one complaint (an immutable named tuple: cheap to remake for every event)."""

    subject: str
    procedure: str
    service_area: str
    stage: str
    visit: int
    open: bool
    started: datetime
    deadlines: tuple[Deadline, ...] = ()
    outcome: str | None = None
    suspended: datetime | None = None  # when the current stage's clock stopped (None: running)
    case: Case = Case()  # the case's story (`services.cases`): what its admitted acts say

    @property
    def status(self) -> str:
        """The case's status, as every output defines it (contract 11.1)."""
        return self.case.status or ("open" if self.open else "closed")

    def deadline(self, kind: str) -> Deadline | None:
        """The current stage visit's open deadline of `kind`."""
        for d in self.deadlines:
            if d.visit == self.visit and d.kind == kind and d.status == "open":
                return d
        return None

    def with_deadlines(self, deadlines: tuple[Deadline, ...]) -> CaseState:
        """The same case with these deadlines (built directly: `decide` runs for every history event)."""
        return CaseState(self.subject, self.procedure, self.service_area, self.stage, self.visit, self.open,
                         self.started, deadlines, self.outcome, self.suspended, self.case)


# Decisions are built as `timers.Decision(...)`: calling the subscripted alias costs a typing call per event.
Decision: TypeAlias = timers.Decision[CaseState]


def _emit(state: CaseState, type_: str, deadline: Deadline, at: datetime, **extra: Any) -> dict[str, Any]:
    return timers.deadline_event(SOURCE, type_, state.subject, at, deadline, **extra)


def fire_due(state: CaseState, until: datetime) -> tuple[CaseState, list[dict[str, Any]]]:
    """Warn and breach every deadline due at or before `until`; events in time order."""
    if not timers.any_due(state.deadlines, until):  # the common case: the state stands as it is
        return state, []
    fired = timers.fire_all(list(state.deadlines), until)
    new = state.with_deadlines(tuple(fired.deadlines))
    return new, [_emit(new, FIRING_TYPES[kind], d, at) for d, kind, at in fired.firings]


def _replace_deadline(state: CaseState, old: Deadline, new: Deadline) -> CaseState:
    return state.with_deadlines(tuple(new if d is old else d for d in state.deadlines))


def _lateness(state: CaseState) -> timedelta:
    """The case's declared lateness: every deadline of a case carries its source's (set at its first stage)."""
    return state.deadlines[0].lateness if state.deadlines else timers.ON_TIME


def _start_stage(state: CaseState, procedure: Procedure, stage_id: str, at: datetime,
                 lateness: timedelta | None = None) -> Decision:
    stage = procedure.stage(stage_id)
    assert stage is not None
    calendar = procedure.case_calendar()
    visit = state.visit + 1
    late = _lateness(state) if lateness is None else lateness
    scheduled = []
    for kind, amount, unit in stage.timescales():
        due, warn_at = calendar.deadline_after(at, amount, procedure.warning_lead, unit)
        scheduled.append(timers.schedule(stage_id, kind, visit, due, warn_at, at, late))
    state = state._replace(stage=stage_id, visit=visit, open=True, started=at,
                           deadlines=(*state.deadlines, *scheduled), outcome=None, suspended=None)
    return timers.Decision(state, [_emit(state, "deadline.scheduled", d, at) for d in scheduled])


def _end_open(state: CaseState) -> CaseState:
    deadlines = tuple(timers.cancel(d) if d.status in ("open", "suspended") else d for d in state.deadlines)
    return state._replace(open=False, deadlines=deadlines, suspended=None)


def _meet(state: CaseState, kinds: tuple[str, ...], at: datetime) -> tuple[tuple[Deadline, ...], list[dict[str, Any]]]:
    """The case's deadlines with the open ones of `kinds` met at `at`, and a `deadline.met` for each, in order."""
    deadlines, derived = state.deadlines, []
    for kind in kinds:
        deadline = state.deadline(kind)
        if deadline is not None:
            done = timers.meet(deadline, at)
            deadlines = tuple(done if d is deadline else d for d in deadlines)
            derived.append(_emit(state, "deadline.met", done, at, late=bool(done.late)))
            if timers.withdraws(deadline, done):  # recorded after its breach, dated in time
                derived.append(timers.breach_withdrawn(SOURCE, FIRING_TYPES["breach"], state.subject, done))
    return deadlines, derived


def _stage_refusal(state: CaseState, data: dict[str, Any], what: str) -> str | None:
    stage = data.get("stage")
    if stage is not None and stage != state.stage:
        return f"{what} for stage {stage} but the case is at stage {state.stage}"
    return None


def on_received(state: CaseState | None, body: dict[str, Any], book: ProcedureBook,
                lateness: Mapping[str, timedelta] = timers.NO_LATENESS) -> Decision:
    """A new complaint: its procedure version fixed, its first stage's deadlines scheduled (with its source's
    declared lateness)."""
    data = body["data"]
    if state is not None:
        return timers.Decision(state, refusal="complaint.received for a case already received")
    procedure = book.current(data.get("procedure"))
    if procedure is None:
        return timers.Decision(None, refusal=f"procedure {data.get('procedure')!r} is not one of {book.ids()}")
    stage = procedure.serious_stage if data.get("serious") else data["stage"]
    if procedure.stage(stage) is None:
        return timers.Decision(None, refusal=f"stage {stage!r} is not a stage of procedure {procedure.id}")
    at = event_time(body)
    too_far = uncountable("complaint.received", at.date())
    if too_far:
        return timers.Decision(None, refusal=too_far, reason="inconsistent")
    blank = CaseState(str(body["subject"]), procedure.key, str(data["service_area"]), stage, 0, True, at)
    return _start_stage(blank, procedure, stage, at, timers.lateness_of(lateness, body.get("source")))


def on_acknowledged(state: CaseState, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """The acknowledgement meets the stage's acknowledge deadline (if it has one)."""
    refusal = _stage_refusal(state, body["data"], "acknowledgement")
    if refusal:
        return timers.Decision(state, refusal=refusal)
    deadlines, derived = _meet(state, ("acknowledge",), at)
    return timers.Decision(state.with_deadlines(deadlines) if derived else state, derived)


def on_responded(state: CaseState, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """The response meets the respond deadline, and the acknowledge one if still open (a response acknowledges)."""
    refusal = _stage_refusal(state, body["data"], "response")
    if refusal:
        return timers.Decision(state, refusal=refusal)
    deadlines, derived = _meet(state, ("acknowledge", "respond"), at)
    return timers.Decision(state._replace(deadlines=deadlines, outcome=body["data"]["outcome"]), derived)


def on_extension(state: CaseState, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """The agreed date becomes the respond target (due at the end of that day), within any cap."""
    data = body["data"]
    refusal = _stage_refusal(state, data, "extension")
    if refusal is None and state.suspended is not None:
        refusal = f"stage {state.stage} is suspended; agree an extension after complaint.resumed"
    deadline = state.deadline("respond")
    if refusal or deadline is None:
        return timers.Decision(state, refusal=refusal or f"no open response deadline at stage {state.stage} to extend")
    procedure = book.get(state.procedure)
    calendar, stage = procedure.case_calendar(), procedure.stage(state.stage)
    new_due = date.fromisoformat(str(data["new_due"]))
    received = calendar.local_date(state.started)
    impossible = _impossible_due(state, new_due, received)
    if impossible:
        return timers.Decision(state, refusal=impossible, reason="inconsistent")
    if stage is not None and stage.max_extension and new_due > calendar.add_days(received, stage.max_extension):
        return timers.Decision(state, refusal=f"extension to {new_due} exceeds stage {state.stage}'s limit of "
                                              f"{stage.max_extension} days")
    due = calendar.end_of(new_due)
    moved = timers.move(deadline, due, calendar.warning_before(due, procedure.warning_lead), at)
    state = _replace_deadline(state, deadline, moved)
    return timers.Decision(state, [_emit(state, "deadline.scheduled", moved, at)])


def _impossible_due(state: CaseState, new_due: date, started: date) -> str | None:
    """Why an agreed date cannot be the stage's target (before the stage started, or beyond any calendar)."""
    if new_due < started:
        return f"extension to {new_due} is before stage {state.stage} started on {started}"
    return uncountable(f"extension to {new_due}", new_due)


def on_escalated(state: CaseState, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """The next stage (or a later one past bypassable stages) starts; refused where the procedure forbids it."""
    too_far = uncountable("complaint.escalated", at.date())
    if too_far:
        return timers.Decision(state, refusal=too_far, reason="inconsistent")
    procedure, to_stage = book.get(state.procedure), str(body["data"]["to_stage"])
    refusal = procedure.escalation_refusal(state.stage, to_stage)
    if refusal:
        return timers.Decision(state, refusal=refusal)
    return _start_stage(_end_open(state), procedure, to_stage, at)


def on_suspended(state: CaseState, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """The stage's clock stops, for a reason its procedure lists: its open deadlines neither warn nor breach."""
    data = body["data"]
    refusal = _stage_refusal(state, data, "suspension") or _suspension_refusal(state, book, str(data["reason"]))
    if refusal:
        return timers.Decision(state, refusal=refusal)
    deadlines = tuple(timers.suspend(d) if d.is_open and d.visit == state.visit else d for d in state.deadlines)
    return timers.Decision(state.with_deadlines(deadlines)._replace(suspended=at))


def _suspension_refusal(state: CaseState, book: ProcedureBook, reason: str) -> str | None:
    """Why the current stage's clock may not stop for `reason` now; None when it may."""
    procedure = book.get(state.procedure)
    stage = procedure.stage(state.stage)
    if not state.open:
        return "suspension of a case that is not open"
    if state.suspended is not None:
        return f"stage {state.stage} is already suspended since {state.suspended.isoformat()}"
    if stage is None or not stage.may_suspend(reason):
        allowed = stage.suspension_reasons if stage is not None else []
        return (f"stage {state.stage} of procedure {procedure.id} may not be suspended for {reason!r} "
                f"(reasons it allows: {allowed or 'none'})")
    return None


def on_resumed(state: CaseState, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """The stopped clock restarts: each suspended deadline moves later by the counting days it stood still."""
    refusal = _stage_refusal(state, body["data"], "resumption")
    if refusal is None and state.suspended is None:
        refusal = f"stage {state.stage} is not suspended"
    if refusal:
        return timers.Decision(state, refusal=refusal)
    assert state.suspended is not None
    if at < state.suspended:
        return timers.Decision(state, refusal=f"resumption at {at.isoformat()} is before the suspension at "
                                              f"{state.suspended.isoformat()}", reason="inconsistent")
    return _resume(state, at, book)


def _resume(state: CaseState, at: datetime, book: ProcedureBook) -> Decision:
    """The case with its suspended deadlines running again, moved by the days stopped, and their new schedule."""
    procedure = book.get(state.procedure)
    calendar = procedure.case_calendar()
    assert state.suspended is not None
    stopped = calendar.days_between(calendar.local_date(state.suspended), calendar.local_date(at))
    deadlines, moved = list(state.deadlines), []
    for i, d in enumerate(deadlines):
        if d.status != "suspended":
            continue
        if stopped == 0:  # restarted the day it stopped: the target stands
            deadlines[i] = d._replace(status="open", warned=d.warned or (d.warn_at is not None and d.warn_at <= at))
            continue
        due = calendar.end_of(calendar.shift(calendar.local_date(d.due), stopped))
        deadlines[i] = timers.move(d, due, calendar.warning_before(due, procedure.warning_lead), at)
        moved.append(deadlines[i])
    new = state.with_deadlines(tuple(deadlines))._replace(suspended=None)
    return timers.Decision(new, [_emit(new, "deadline.scheduled", d, at) for d in moved])


def on_ended(state: CaseState, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """Withdrawn or closed: the open deadlines end unmet and unbreached."""
    return timers.Decision(_end_open(state))


def on_recorded_firing(state: CaseState, body: dict[str, Any], at: datetime, book: ProcedureBook) -> Decision:
    """A warning or breach the history shows this service raised: mark it fired (no new events)."""
    if body.get("source") != SOURCE:
        return timers.Decision(state)
    data, breached = body["data"], body["type"] == "deadline.breached"
    due = datetime.fromisoformat(str(data["due"]))
    for d in state.deadlines:
        if d.stage == data["stage"] and d.kind == data["kind"] and d.due == due and d.is_open:
            return timers.Decision(_replace_deadline(state, d, d.fired(breached)))
    return timers.Decision(state)


# A handler takes the case, the event's body and its time (read once per event), and the procedures.
Handler = Callable[[CaseState, dict[str, Any], datetime, ProcedureBook], Decision]

# The table of contents: event type -> what it does to a known case.
HANDLERS: dict[str, Handler] = {
    "complaint.acknowledged": on_acknowledged,
    "complaint.responded": on_responded,
    "complaint.extension_agreed": on_extension,
    "complaint.escalated": on_escalated,
    "complaint.suspended": on_suspended,
    "complaint.resumed": on_resumed,
    "complaint.withdrawn": on_ended,
    "complaint.closed": on_ended,
    "deadline.warning": on_recorded_firing,
    "deadline.breached": on_recorded_firing,
}


# Acts of a suspended stage that restart its clock (its deadlines move, then the act meets them).
RESUMING = frozenset({"complaint.acknowledged", "complaint.responded"})


def decide(state: CaseState | None, body: dict[str, Any], book: ProcedureBook,
           lateness: Mapping[str, timedelta] = timers.NO_LATENESS) -> Decision:
    """Apply one history event to a case (see the module docstring for the contract)."""
    return decide_judged(partial(_decide, lateness=lateness) if lateness else _decide, state, body, book)


def _decide(state: CaseState | None, body: dict[str, Any], book: ProcedureBook,
            lateness: Mapping[str, timedelta] = timers.NO_LATENESS) -> Decision:
    type_ = body.get("type")
    if type_ == "complaint.received":
        return on_received(state, body, book, lateness)
    handler = HANDLERS.get(str(type_))
    if state is None or handler is None:
        return timers.Decision(state)
    at = event_time(body)
    stage = body["data"].get("stage") if type_ in STAGE_ACTS else None
    if stage is not None and stage != state.stage:  # admitted, so dated before the case moved on: that stage ended
        return timers.Decision(state)
    fired_state, fired = fire_due(state, at)
    if fired_state.suspended is not None and type_ in RESUMING:  # an act of the stage restarts its clock first
        resumed = _resume(fired_state, at, book)
        assert resumed.state is not None
        fired_state, fired = resumed.state, fired + resumed.derived
    decision = handler(fired_state, body, at, book)
    if decision.refusal:
        return timers.Decision(fired_state, fired, decision.refusal, decision.reason)
    return timers.Decision(decision.state, fired + decision.derived) if fired else decision
