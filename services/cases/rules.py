"""The rules of a case's story: what each act may do, judged against the story and the case's procedure.

`judge(case, act, book)` is the one judgement of a new act (contract 11.1), used by intake at the
door and by every reader of the history, so that an act recorded under contract 1.1 that it refuses
is skipped by all of them alike. An act is judged against the story as it stood at the act's own
`time`: it is placed among the admitted acts by its time (after any act of the same time) and the
story is folded again. An act the rules refuse at its place is refused with their reason; an act
that would make a later admitted act impossible (a withdrawal dated before a recorded response) is
refused `inconsistent`, naming that act, so the history never holds two acts that contradict each
other.

Choices where the contract leaves a rule open (following the SPSO model complaints handling procedure):
- an acknowledgement of a stage already acknowledged is admitted and changes nothing (upstream
  systems resend); a second response at a stage is refused: a further response needs an escalation;
- an escalation is allowed while the stage runs, after its response, and after a closure that
  followed a response (the complainant may ask for the next stage; it reopens the case); never
  after a withdrawal;
- an extension needs an unanswered, running stage with a respond deadline that allows one
  (`extendable`, and within `max_extension` counting days of the stage's start where a limit is set);
- learning acts need a learning stage opened by a closure and not yet submitted; a completed
  action must have been added.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime
from typing import NamedTuple

from services.cases.story import Act, Case, LearningStage, Refusal, Story, Visit
from services.deadlines.calendar import uncountable
from services.deadlines.procedures import Procedure, ProcedureBook, StageSpec

Outcome = Story | Refusal
Rule = Callable[[Story, Act, Procedure], Outcome]


def _no(detail: str) -> Refusal:
    return Refusal("not_allowed", detail)


def _impossible(detail: str) -> Refusal:
    return Refusal("inconsistent", detail)


def _stages(procedure: Procedure) -> str:
    return ", ".join(procedure.stage_ids())


def on_received(story: Story | None, act: Act, book: ProcedureBook) -> Outcome:
    """A new case: the procedure in force and its first stage (the serious stage for a serious complaint)."""
    if story is not None:
        return _impossible(f"complaint.received {act.id}: the case was already received as {story.received_id} "
                           "(one case, one receipt)")
    procedure = book.current(act.get("procedure"))
    if procedure is None:
        return _no(f"complaint.received procedure {act.get('procedure')!r}: not one of the procedures "
                   f"({', '.join(book.ids())})")
    stage = procedure.serious_stage if act.get("serious") else str(act.get("stage"))
    if procedure.stage(stage) is None:
        return _no(f"complaint.received stage {stage}: procedure {procedure.id} has no stage {stage} "
                   f"(stages: {_stages(procedure)})")
    too_far = uncountable("complaint.received", act.time.date())
    if too_far:
        return _impossible(too_far)
    return Story(act.id, procedure.key, str(act.get("service_area")), act.time, (Visit(stage, act.time),))


def _ended(story: Story, act: Act) -> Refusal | None:
    """Why a complaint act may not follow a closure or withdrawal (the closure of a withdrawn case may)."""
    if story.withdrawn is not None and act.type != "complaint.closed":
        return _no(f"{act.type}: the case was withdrawn at {story.withdrawn.isoformat()}")
    if story.closed is not None:
        return _no(f"{act.type}: the case was closed at {story.closed.isoformat()}")
    return None


def _at_stage(story: Story, act: Act) -> Refusal | None:
    """Why an act naming a stage does not fit the case's current stage at the act's time."""
    stage = act.get("stage")
    if stage is not None and stage != story.stage:
        return _no(f"{act.type} for stage {stage}: the case is at stage {story.stage} at {act.time.isoformat()}")
    return None


def on_acknowledged(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The stage is acknowledged (the first acknowledgement counts); a suspended stage's clock restarts."""
    visit = _resumed(story, act.time, procedure)  # an act of a suspended stage restarts its clock
    return story.with_visit(visit if visit.acknowledged else replace(visit, acknowledged=act.time))


def _resumed(story: Story, at: datetime, procedure: Procedure) -> Visit:
    """The current visit with its clock running again at `at` (the days it stood still counted)."""
    visit = story.visit
    if visit.suspended_at is None:
        return visit
    calendar = procedure.case_calendar()
    stopped = calendar.days_between(calendar.local_date(visit.suspended_at), calendar.local_date(at))
    return replace(visit, suspended_at=None, stopped_days=visit.stopped_days + stopped)


def on_responded(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The stage is answered with its outcome; a response of a suspended stage ends the suspension."""
    if story.visit.responded is not None:
        return _no(f"complaint.responded at stage {story.stage}: it was already responded at "
                   f"{story.visit.responded.isoformat()}; a further response needs an escalation")
    visit = _resumed(story, act.time, procedure)
    return story.with_visit(replace(visit, responded=act.time, outcome=str(act.get("outcome")),
                                    acknowledged=visit.acknowledged or act.time))


def _extension_limit(spec: StageSpec, procedure: Procedure, visit: Visit, new_due: date) -> Refusal | None:
    calendar = procedure.case_calendar()
    started = calendar.local_date(visit.entered)
    if new_due < started:
        return _impossible(f"complaint.extension_agreed new_due {new_due}: before stage {visit.stage} started "
                           f"on {started}")
    too_far = uncountable(f"complaint.extension_agreed new_due {new_due}", new_due)
    if too_far:
        return _impossible(too_far)
    if spec.max_extension and new_due > calendar.add_days(started, spec.max_extension):
        unit = "working days" if calendar.kind == "working_days" else "days"
        return _no(f"complaint.extension_agreed new_due {new_due}: stage {visit.stage} of procedure {procedure.id} "
                   f"may be extended to at most {spec.max_extension} {unit} from {started} "
                   f"({calendar.add_days(started, spec.max_extension)})")
    return None


def on_extension(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The agreed date becomes the stage's respond target, within the stage's limit."""
    visit, spec = story.visit, procedure.stage(story.stage)
    assert spec is not None
    if not spec.extendable or not any(kind == "respond" for kind, _, _ in spec.timescales()):
        return _no(f"complaint.extension_agreed: stage {visit.stage} of procedure {procedure.id} allows no extension")
    if visit.responded is not None:
        return _no(f"complaint.extension_agreed: stage {visit.stage} was already responded")
    if visit.suspended_at is not None:
        return _no(f"complaint.extension_agreed: stage {visit.stage} is suspended; agree an extension after "
                   "complaint.resumed")
    new_due = date.fromisoformat(str(act.get("new_due")))
    return _extension_limit(spec, procedure, visit, new_due) or story.with_visit(replace(visit, extended_to=new_due))


def on_escalated(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The case moves on to a later stage of its procedure (past bypassable stages); it reopens a closed case."""
    to_stage = str(act.get("to_stage"))
    if procedure.stage(to_stage) is None:
        return _no(f"complaint.escalated to_stage {to_stage}: procedure {procedure.id} has no stage {to_stage} "
                   f"(stages: {_stages(procedure)})")
    refusal = procedure.escalation_refusal(story.stage, to_stage)
    if refusal:
        return _no(f"complaint.escalated to_stage {to_stage}: {refusal}")
    too_far = uncountable("complaint.escalated", act.time.date())
    if too_far:
        return _impossible(too_far)
    return replace(story, visits=(*story.visits, Visit(to_stage, act.time)), closed=None)


def on_withdrawn(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The complainant withdraws: the case ends without an outcome of its current stage."""
    return replace(story, withdrawn=act.time)


def on_closed(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The case closes (a withdrawn case stays withdrawn) and its learning stage opens."""
    too_far = uncountable("complaint.closed", act.time.date())
    if too_far:
        return _impossible(too_far)
    return replace(story, closed=act.time, learning=(*story.learning, LearningStage(act.time)))


def on_suspended(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The stage's clock stops, for a reason the stage lists."""
    visit, spec, reason = story.visit, procedure.stage(story.stage), str(act.get("reason"))
    if visit.suspended_at is not None:
        return _no(f"complaint.suspended: stage {visit.stage} is already suspended since "
                   f"{visit.suspended_at.isoformat()}")
    if visit.responded is not None:
        return _no(f"complaint.suspended: stage {visit.stage} was already responded")
    if spec is None or not spec.may_suspend(reason):
        allowed = ", ".join(spec.suspension_reasons) if spec and spec.suspension_reasons else "none"
        return _no(f"complaint.suspended reason {reason!r}: stage {visit.stage} of procedure {procedure.id} may not "
                   f"be suspended for it (reasons it allows: {allowed})")
    return story.with_visit(replace(visit, suspended_at=act.time))


def on_resumed(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The stopped clock runs again."""
    if story.visit.suspended_at is None:
        return _no(f"complaint.resumed: stage {story.stage} is not suspended")
    return story.with_visit(_resumed(story, act.time, procedure))


def _learning(story: Story, act: Act) -> LearningStage | Refusal:
    stage = story.open_learning
    if stage is None:
        return _no(f"{act.type}: the case has no open learning stage (one opens at complaint.closed and ends at "
                   "learning.plan.submitted)")
    return stage


def _with_learning(story: Story, stage: LearningStage) -> Story:
    return replace(story, learning=(*story.learning[:-1], stage))


def on_action_added(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """An action joins the open learning stage's plan."""
    stage = _learning(story, act)
    if isinstance(stage, Refusal):
        return stage
    return _with_learning(story, replace(stage, actions=stage.actions | {str(act.get("action_id"))}))


def on_action_completed(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """An action of the open plan is completed."""
    stage, action = _learning(story, act), str(act.get("action_id"))
    if isinstance(stage, Refusal):
        return stage
    if action not in stage.actions:
        return _impossible(f"learning.action.completed action_id {action[:80]}: no such action in the open learning "
                           "stage's plan (add it with learning.action.added first)")
    return _with_learning(story, replace(stage, completed=stage.completed | {action}))


def on_plan_submitted(story: Story, act: Act, procedure: Procedure) -> Outcome:
    """The learning form is returned: the learning stage ends."""
    stage = _learning(story, act)
    if isinstance(stage, Refusal):
        return stage
    return _with_learning(story, replace(stage, submitted=act.time))


# The table of contents: act type -> its rule, and the checks each runs first.
RULES: dict[str, Rule] = {
    "complaint.acknowledged": on_acknowledged,
    "complaint.responded": on_responded,
    "complaint.extension_agreed": on_extension,
    "complaint.escalated": on_escalated,
    "complaint.withdrawn": on_withdrawn,
    "complaint.closed": on_closed,
    "complaint.suspended": on_suspended,
    "complaint.resumed": on_resumed,
    "learning.action.added": on_action_added,
    "learning.action.completed": on_action_completed,
    "learning.plan.submitted": on_plan_submitted,
}
STAGE_ACTS = frozenset({"complaint.acknowledged", "complaint.responded", "complaint.extension_agreed",
                        "complaint.withdrawn", "complaint.suspended", "complaint.resumed"})


def _precheck(story: Story, act: Act) -> Refusal | None:
    if act.type.startswith("learning."):
        return None
    if act.type == "complaint.escalated":
        if story.withdrawn is not None:
            return _no(f"complaint.escalated: the case was withdrawn at {story.withdrawn.isoformat()}")
        if story.closed is not None and story.visit.responded is None:
            return _no(f"complaint.escalated: the case was closed at {story.closed.isoformat()} without a response "
                       f"at stage {story.stage}")
        return None
    if act.type == "complaint.closed" and story.closed is not None:
        return _no(f"complaint.closed: the case was already closed at {story.closed.isoformat()}")
    if act.type == "complaint.withdrawn" and story.withdrawn is not None:
        return _no(f"complaint.withdrawn: the case was already withdrawn at {story.withdrawn.isoformat()}")
    ended = None if act.type == "complaint.closed" else _ended(story, act)
    return ended or (_at_stage(story, act) if act.type in STAGE_ACTS else None)


def step(story: Story | None, act: Act, book: ProcedureBook) -> Outcome:
    """The story with `act` applied as its latest act, or why the act may not be."""
    if act.type == "complaint.received":
        return on_received(story, act, book)
    if story is None:
        return _impossible(f"{act.type} is dated {act.time.isoformat()}: no complaint.received of its case is "
                           "recorded at or before that time; send the act's real date")
    if act.time < story.received:
        return _impossible(f"{act.type} is dated {act.time.isoformat()}, before its complaint was received "
                           f"({story.received.isoformat()}); send the act's real date")
    rule = RULES.get(act.type)
    if rule is None:
        return story
    return _precheck(story, act) or rule(story, act, book.get(story.procedure))


def judge(case: Case, act: Act, book: ProcedureBook) -> Case | Refusal:
    """The case with `act` admitted at its time, or why it may not be (see the module docstring)."""
    if not case.acts or act.time >= case.acts[-1].time:  # the common case: the act is the story's latest
        told = step(case.story, act, book)
        return told if isinstance(told, Refusal) else Case((*case.acts, act), told)
    at = bisect_right([a.time for a in case.acts], act.time)
    acts = (*case.acts[:at], act, *case.acts[at:])
    story: Story | None = None
    for each in acts:
        told = step(story, each, book)
        if isinstance(told, Refusal):
            if each is act:
                return told
            return _impossible(f"{act.type} dated {act.time.isoformat()} contradicts the case's {each.type} dated "
                               f"{each.time.isoformat()}: {told.detail}")
        story = told
    return Case(acts, story)


class Told(NamedTuple):
    """A case's acts read in history order: the case they make and the acts the judgement refused."""

    case: Case
    refused: list[tuple[Act, Refusal]]


def tell(acts: Iterable[Act], book: ProcedureBook, case: Case | None = None) -> Told:
    """Judge each act in the order given (history order), as intake did; the refused ones are left out."""
    case = case or Case()
    refused: list[tuple[Act, Refusal]] = []
    for act in acts:
        told = judge(case, act, book)
        if isinstance(told, Refusal):
            refused.append((act, told))
        else:
            case = told
    return Told(case, refused)
