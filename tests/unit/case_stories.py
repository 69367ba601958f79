"""Hypothesis strategies (no tests) for whole case stories: schema-shaped history events of a few cases.

Shared by the escalation and learning fuzz tests. Times and dates range over everything the schemas
let through (years 1 to 9999, any whole-minute offset), with most of them near today so that stories
also reach deep into the procedures (escalations, extensions, breaches, learning plans).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from services.deadlines.procedure_files import load_book
from services.deadlines.timers import Decision, decide_safely
from services.escalation.domain import SOURCE as ESCALATION
from services.learning.domain import SOURCE as LEARNING

BOOK = load_book()
SUBJECTS = ("case-a", "case-b", "case-c")
STAGES = sorted({s for pid in BOOK.ids() for p in [BOOK.current(pid)] if p is not None for s in p.stage_ids()})
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
NEAR = st.datetimes(datetime(2010, 1, 1), datetime(2030, 12, 31), timezones=OFFSETS)
ANYWHEN = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59), timezones=OFFSETS)
EDGES = st.sampled_from([datetime(1, 1, 1), datetime(1, 1, 3, 12), datetime(9999, 12, 28),
                         datetime(9999, 12, 31, 23, 59)])
EDGE_TIMES = st.builds(lambda t, tz: t.replace(tzinfo=tz), EDGES, OFFSETS)
TIMES = st.one_of(NEAR, NEAR, NEAR, ANYWHEN, EDGE_TIMES).map(lambda t: t.replace(microsecond=0))
DATES = st.one_of(st.dates(date(2010, 1, 1), date(2030, 12, 31)), st.dates(date(1, 1, 1), date(9999, 12, 31)),
                  EDGES.map(datetime.date))
# The default procedure's stages most often, so that acts usually name the case's own stage.
STAGE = st.one_of(st.sampled_from(["stage1", "stage2"]), st.sampled_from([*STAGES, "nowhere"]))
KINDS = st.sampled_from(["acknowledge", "respond", "learning"])


def _data(type_: str) -> st.SearchStrategy[dict[str, Any]]:
    """The `data` of one inbound or recorded type, as the schemas shape it."""
    inbound: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "complaint.received": st.fixed_dictionaries(
            {"service_area": st.sampled_from(["community_care", "general", "a ward"]), "channel": st.just("phone"),
             "stage": STAGE, "serious": st.booleans()},
            optional={"procedure": st.sampled_from([*BOOK.ids(), "nope"]), "themes": st.just(["delay"])}),
        "complaint.acknowledged": st.fixed_dictionaries({"stage": STAGE}),
        "complaint.extension_agreed": st.fixed_dictionaries(
            {"stage": STAGE, "new_due": DATES.map(date.isoformat), "reason": st.just("agreed")}),
        "complaint.responded": st.fixed_dictionaries(
            {"stage": STAGE, "outcome": st.sampled_from(["upheld", "partially_upheld", "not_upheld", "resolved"])}),
        "complaint.escalated": st.fixed_dictionaries({"to_stage": STAGE}),
        "complaint.withdrawn": st.fixed_dictionaries({}, optional={"stage": STAGE}),
        "complaint.closed": st.just({}),
        "complaint.suspended": st.fixed_dictionaries(
            {"stage": STAGE, "reason": st.sampled_from(["advocate_appointment", "holiday"])}),
        "complaint.resumed": st.fixed_dictionaries({"stage": STAGE}),
        "learning.action.added": st.fixed_dictionaries(
            {"action_id": st.sampled_from(["a1", "a2"]), "level": st.sampled_from(["individual", "local", "systemic"]),
             "description": st.just("briefing")}),
        "learning.action.completed": st.fixed_dictionaries({"action_id": st.sampled_from(["a1", "a2", "a9"])}),
        "learning.plan.submitted": st.just({}),
    }
    if type_ in inbound:
        return inbound[type_]
    return st.fixed_dictionaries(  # recorded deadline.warning / deadline.breached / learning.stage.overdue
        {"stage": st.sampled_from([*STAGES, "learning"]), "kind": KINDS,
         "due": TIMES.map(lambda t: t.replace(hour=23, minute=59, second=59).isoformat())})


INBOUND = ("complaint.received", "complaint.acknowledged", "complaint.extension_agreed", "complaint.responded",
           "complaint.escalated", "complaint.withdrawn", "complaint.closed", "complaint.suspended",
           "complaint.resumed", "learning.action.added",
           "learning.action.completed", "learning.plan.submitted")
RECORDED = ("deadline.warning", "deadline.breached", "learning.stage.overdue")


@st.composite
def event(draw: st.DrawFn, n: int) -> dict[str, Any]:
    """One history event of one of the story's cases."""
    type_ = draw(st.sampled_from(INBOUND + INBOUND + RECORDED))
    source = draw(st.sampled_from([ESCALATION, LEARNING, "crm"])) if type_ in RECORDED else "crm"
    return {"specversion": "1.0", "id": f"e{n}", "source": source, "type": type_,
            "subject": draw(st.sampled_from(SUBJECTS)), "time": draw(TIMES).isoformat(),
            "datacontenttype": "application/json", "data": draw(_data(type_))}


@st.composite
def story(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A history: events of a few cases, each starting (mostly) with its receipt, some repeated or reordered."""
    size = draw(st.integers(1, 25))
    events = [draw(event(n)) for n in range(size)]
    for subject in draw(st.sets(st.sampled_from(SUBJECTS), max_size=3)):
        opening = draw(event(size + len(events)))
        opening.update(type="complaint.received", subject=subject, data=draw(_data("complaint.received")))
        events.insert(0, opening)
    for _ in range(draw(st.integers(0, 3))):  # duplicates and reordered redeliveries
        events.insert(draw(st.integers(0, len(events))), events[draw(st.integers(0, len(events) - 1))])
    return events


def untils() -> st.SearchStrategy[datetime]:
    """Any instant a tick may fire at."""
    return TIMES


def fold(decide: Callable[[Any, dict[str, Any]], Decision[Any]],
         events: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Each case's state after the story (through `decide_safely`, as live and replay run it), and the
    refusals that came from a domain step raising rather than from the domain's own rules."""
    states: dict[str, Any] = {}
    failures = []
    for body in events:
        subject = str(body["subject"])
        decision = decide_safely(decide, states.get(subject), body)
        if decision.state is not None:
            states[subject] = decision.state
        if decision.refusal and " cannot be applied: " in decision.refusal:
            failures.append(decision.refusal)
    return states, failures


def stored(state: Any, codec: Any) -> Any:
    """`state` as the case table stores it (JSON text) and reads it back."""
    return codec.decode(json.loads(json.dumps(codec.encode(state))))
