"""One case's whole story in time order, for a complaints officer.

Lines are in event-time order; a derived event carries the time of what caused it (a deadline scheduled
or met by an act has the act's time), so it stands right after its cause, and a timer event (a warning or
breach) stands at the moment the deadline actually passed, even when it was recorded later. Events of one
instant keep the order the history accepted them (seq). The case's procedure is the version it was
received under (named even when the complaint named none and the default applied), and its open
deadlines are counted in that procedure's calendar.

Each act is judged as intake judges it (`services.cases`, contract 11.1): after each act the line shows
the case's status, and an act recorded under contract 1.1 that the judgement refuses is listed as
refused, with the reason, and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.cases import rules
from services.cases.story import Case, Refusal, act_of
from services.common.eventstore import StoredEvent
from services.deadlines.calendar import Calendar
from services.deadlines.procedures import ProcedureBook
from services.deadlines.worklist import distance


@dataclass(frozen=True)
class OpenDeadline:
    """A deadline still open on the case, with the calendar it is counted in."""

    stage: str
    kind: str
    due: datetime
    calendar: Calendar


@dataclass(frozen=True)
class CaseFacts:
    """What the live tables add to the history: the procedure in force and the open deadlines."""

    procedure: str | None = None  # "spso-mchp (Model Complaints Handling Procedure)"
    open_deadlines: list[OpenDeadline] = field(default_factory=list)

DERIVED_PREFIXES = ("deadline.", "learning.stage.")
# Event type -> the data fields worth a line; free text (descriptions, reasons) is shown as it is
# recorded, because the officer answering an ombudsman needs it; nothing here goes to logs.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "complaint.received": ("stage", "serious", "service_area", "channel", "procedure", "themes"),
    "complaint.acknowledged": ("stage",),
    "complaint.extension_agreed": ("stage", "new_due", "reason"),
    "complaint.responded": ("stage", "outcome"),
    "complaint.escalated": ("to_stage",),
    "complaint.withdrawn": ("stage",),
    "deadline.scheduled": ("stage", "kind", "due"),
    "deadline.warning": ("stage", "kind", "due"),
    "deadline.breached": ("stage", "kind", "due"),
    "deadline.met": ("stage", "kind", "due", "late"),
    "deadline.breach_withdrawn": ("stage", "kind", "due", "met_at"),
    "learning.stage.opened": ("due",),
    "learning.stage.overdue": ("due",),
    "learning.stage.completed": ("due", "late"),
    "learning.action.added": ("action_id", "level", "description"),
    "learning.action.completed": ("action_id",),
}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(_value(v) for v in value) or "-"
    if isinstance(value, dict):  # e.g. an erasure's record of what it erased: "fields data.reason (seq 12)"
        return "(" + " ".join(f"{k} {_value(v)}" for k, v in value.items()) + ")"
    return str(value)


def describe(event: StoredEvent) -> str:
    """The event's key data as `name=value` pairs."""
    data = event.body.get("data") or {}
    fields = KEY_FIELDS.get(event.type, tuple(sorted(data)))
    return " ".join(f"{f}={_value(data[f])}" for f in fields if f in data)


def in_time_order(events: list[StoredEvent]) -> list[StoredEvent]:
    """Events by their time; at one instant inbound before derived, each in history order."""
    return sorted(events, key=lambda e: (e.time, e.type.startswith(DERIVED_PREFIXES), e.seq))


@dataclass(frozen=True)
class Judged:
    """The case's acts as the one judgement reads them: the case, the refused acts, the status after each."""

    case: Case
    refused: dict[str, Refusal]  # event id -> why the judgement refuses it
    status_after: dict[str, str]  # event id of an admitted act -> the case's status once it is applied


def judged(events: list[StoredEvent], book: ProcedureBook | None) -> Judged:
    """Judge the case's acts in history order, as intake did; statuses follow the admitted acts in time order."""
    if book is None:
        return Judged(Case(), {}, {})
    acts = [a for a in (act_of(e.body, e.time) for e in events) if a is not None]
    told = rules.tell(acts, book)
    after: dict[str, str] = {}
    case = Case()
    for act in told.case.acts:
        step = rules.judge(case, act, book)
        if isinstance(step, Case):
            case = step
            after[act.id] = step.status or "?"
    return Judged(told.case, {a.id: r for a, r in told.refused}, after)


def _verdict(e: StoredEvent, judgement: Judged) -> str:
    refusal = judgement.refused.get(e.id)
    if refusal is not None:
        return f"  REFUSED {refusal.reason}: {refusal.detail} (changes nothing)"
    status = judgement.status_after.get(e.id)
    return f"  status: {status}" if status else ""


def story_lines(events: list[StoredEvent], judgement: Judged | None = None) -> list[str]:
    """One line per event in time order: event time, derived marker, type, key data, source and seq, and the
    case's status after an act (or why the judgement refuses it)."""
    judgement = judgement or Judged(Case(), {}, {})
    lines = []
    for e in in_time_order(events):
        marker = "  ->" if e.type.startswith(DERIVED_PREFIXES) else ""
        when = e.time.isoformat(timespec="seconds")
        lines.append(f"{when} {marker:4} {e.type:27} {describe(e)}  [seq {e.seq}, by {e.body.get('source', '?')}]"
                     f"{_verdict(e, judgement)}")
    return lines


def overview(events: list[StoredEvent], procedure: str | None = None, judgement: Judged | None = None) -> list[str]:
    """The case at a glance: where it came from, stages it went through, outcome, how its deadlines went."""
    data = next((e.body.get("data") or {} for e in events if e.type == "complaint.received"), None)
    if data is None:
        return []
    story = judgement.case.story if judgement is not None else None
    if story is not None:
        stages, outcome = list(story.stages), story.outcome or "none yet"
        status = f"; status {story.status}"
        refused = len(judgement.refused) if judgement is not None else 0
        status += f" ({refused} act(s) refused, listed below)" if refused else ""
    else:
        stages = [str(data.get("stage"))] + [str(e.body["data"].get("to_stage")) for e in events
                                             if e.type == "complaint.escalated"]
        outcome = next((str(e.body["data"].get("outcome")) for e in reversed(events)
                        if e.type == "complaint.responded"), "none yet")
        status = ""
    met = [e for e in events if e.type == "deadline.met"]
    late = sum(1 for e in met if e.body["data"].get("late"))
    withdrawn = sum(1 for e in events if e.type == "deadline.breach_withdrawn")  # shown met in time after all
    breached = sum(1 for e in events if e.type == "deadline.breached") - withdrawn
    named = procedure or data.get("procedure") or "the configured default"
    return [f"service area {data.get('service_area')}, procedure {named}"
            f"{', serious' if data.get('serious') else ''}; stages {' -> '.join(stages)}; outcome {outcome}{status}",
            f"deadlines: {len(met)} met ({late} late), {breached} breached"
            + (f" ({withdrawn} breach(es) withdrawn: a late act showed the deadline met in time)" if withdrawn else "")]


def open_lines(deadlines: list[OpenDeadline], now: datetime) -> list[str]:
    """The open deadlines, soonest first, each with `due today`, `N working days left` or `overdue by N ...`."""
    if not deadlines:
        return []
    lines = ["", "open deadlines:"]
    for d in sorted(deadlines, key=lambda d: d.due):
        due = d.due.astimezone(d.calendar.zone).isoformat(timespec="seconds")
        lines.append(f"  {d.stage} {d.kind} due {due}: {distance(d.calendar, d.due, now).text()}")
    return lines


def render_story(subject: str, events: list[StoredEvent], facts: CaseFacts | None = None,
                 now: datetime | None = None, book: ProcedureBook | None = None) -> str:
    """The whole story of `subject` as text; derived events are marked with an arrow; with `book`, each act
    is judged as intake judges it."""
    if not events:
        return f"{subject}: no events recorded\n"
    facts = facts or CaseFacts()
    judgement = judged(events, book)
    ordered = in_time_order(events)
    head = [f"History of {subject}: {len(events)} event(s), {ordered[0].time.date()} to {ordered[-1].time.date()}",
            *overview(events, facts.procedure, judgement), "", f"{'event time':25} {'':4} {'type':27} details"]
    tail = open_lines(facts.open_deadlines, now) if now is not None else []
    return "\n".join(head + story_lines(events, judgement) + tail) + "\n"
