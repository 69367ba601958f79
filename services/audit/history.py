"""One case's whole story, in the order the history accepted it, for a complaints officer.

Lines are in history order (seq): what the record says happened, in the order it was recorded. Each
line shows the event's own time, so a timer event recorded after a late act (a breach fired when
the act arrived) still shows when the deadline actually passed.
"""

from __future__ import annotations

from typing import Any

from services.common.eventstore import StoredEvent

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
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def describe(event: StoredEvent) -> str:
    """The event's key data as `name=value` pairs."""
    data = event.body.get("data") or {}
    fields = KEY_FIELDS.get(event.type, tuple(sorted(data)))
    return " ".join(f"{f}={_value(data[f])}" for f in fields if f in data)


def story_lines(events: list[StoredEvent]) -> list[str]:
    """One line per event: event time, derived marker, type, key data, source and seq."""
    lines = []
    for e in events:
        marker = "  ->" if e.type.startswith(DERIVED_PREFIXES) else ""
        when = e.time.isoformat(timespec="seconds")
        lines.append(f"{when} {marker:4} {e.type:27} {describe(e)}  [seq {e.seq}, by {e.body.get('source', '?')}]")
    return lines


def overview(events: list[StoredEvent]) -> list[str]:
    """The case at a glance: where it came from, stages it went through, outcome, how its deadlines went."""
    data = next((e.body.get("data") or {} for e in events if e.type == "complaint.received"), None)
    if data is None:
        return []
    stages = [str(data.get("stage"))] + [str(e.body["data"].get("to_stage")) for e in events
                                         if e.type == "complaint.escalated"]
    outcome = next((str(e.body["data"].get("outcome")) for e in reversed(events) if e.type == "complaint.responded"),
                   "none yet")
    met = [e for e in events if e.type == "deadline.met"]
    late = sum(1 for e in met if e.body["data"].get("late"))
    breached = sum(1 for e in events if e.type == "deadline.breached")
    return [f"service area {data.get('service_area')}, procedure {data.get('procedure') or 'default'}"
            f"{', serious' if data.get('serious') else ''}; stages {' -> '.join(stages)}; outcome {outcome}",
            f"deadlines: {len(met)} met ({late} late), {breached} breached"]


def render_story(subject: str, events: list[StoredEvent]) -> str:
    """The whole story of `subject` as text; derived events are marked with an arrow."""
    if not events:
        return f"{subject}: no events recorded\n"
    head = [f"History of {subject}: {len(events)} event(s), {events[0].time.date()} to {events[-1].time.date()}",
            *overview(events), "", f"{'event time':25} {'':4} {'type':27} details"]
    return "\n".join(head + story_lines(events)) + "\n"
