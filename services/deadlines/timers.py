"""Deadlines as plain data, and the pure rules for warning and breaching them (shared by both services).

Exactly-once rests on two things: a deadline's own flags (`warned`, `breached`) change when a
firing is derived, in the same transaction that appends the derived event; and every derived
event has a deterministic id (`derived_id`), so deriving it again (replay, a retried
transaction) is a duplicate the history drops. A warning or breach is once per deadline *and
due*: when an agreed extension moves the due instant, the new target can be warned and breached
once more (the ids differ because `due` does).

A late act corrects what it contradicts (contract 11.2): an act recorded after a breach whose `time` is on
or before the due instant meets the deadline in time (`meet` clears its `breached` flag) and withdraws the
breach (`withdraws`, `breach_withdrawn`: a `deadline.breach_withdrawn` naming the breach's id). A deadline
may carry a declared `lateness` (how late its case's source delivers records): its breach is raised only
once that much time has passed after the due instant, and still says the due instant as its time; its
warning is not delayed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from schemas.upcast import schema_urn
from services.common.errors import ConfigurationError

Status = Literal["open", "met", "cancelled", "suspended"]
Firing = Literal["warning", "breach"]
ON_TIME = timedelta(0)  # no declared lateness: a breach is raised at the due instant
NO_LATENESS: Mapping[str, timedelta] = {}  # no source declared late
WITHDRAWN_TYPE = "deadline.breach_withdrawn"


class Deadline(NamedTuple):
    """One target: a stage visit's acknowledgement or response, or a learning stage.

    An immutable named tuple rather than a frozen dataclass: deadlines are made and remade for every
    history event that touches them (live and in replay), and a tuple is several times cheaper to build.
    """

    stage: str
    kind: str
    visit: int
    due: datetime
    warn_at: datetime | None
    status: Status = "open"
    warned: bool = False
    breached: bool = False
    met_at: datetime | None = None
    late: bool | None = None
    lateness: timedelta = ON_TIME  # how long after `due` its breach waits (its case's source's declared lateness)

    @property
    def key(self) -> str:
        """Unique within a case: stage, visit ordinal and kind."""
        return f"{self.stage}:{self.visit}:{self.kind}"

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def next_fire_at(self) -> datetime | None:
        """When this deadline next needs attention (warning, then breach); None when nothing is left."""
        if self.status != "open" or self.breached:
            return None
        if not self.warned and self.warn_at is not None and self.warn_at < self.due:
            return self.warn_at
        return self.due + self.lateness

    def fired(self, breached: bool) -> Deadline:
        """The deadline once its warning (and, if `breached`, its breach) has fired."""
        return Deadline(self.stage, self.kind, self.visit, self.due, self.warn_at, self.status, True,
                        self.breached or breached, self.met_at, self.late, self.lateness)


def schedule(stage: str, kind: str, visit: int, due: datetime, warn_at: datetime | None,
             at: datetime, lateness: timedelta = ON_TIME) -> Deadline:
    """A new deadline set at `at`; a warning instant not after `at` is treated as already passed."""
    return Deadline(stage, kind, visit, due, warn_at, warned=warn_at is None or warn_at <= at, lateness=lateness)


def lateness_of(lateness: Mapping[str, timedelta], source: object) -> timedelta:
    """The declared lateness of an inbound `source` (none declared: on time)."""
    return lateness.get(str(source), ON_TIME)


def fire(deadline: Deadline, until: datetime) -> tuple[Deadline, list[tuple[Firing, datetime]]]:
    """The firings due at or before `until`, in time order, and the deadline after them.

    A breach is dated at the due instant (when the deadline passed), even when a declared lateness made it
    wait longer to be raised.
    """
    fired: list[tuple[Firing, datetime]] = []
    while (at := deadline.next_fire_at()) is not None and at <= until:
        if not deadline.warned and at == deadline.warn_at:
            deadline = deadline.fired(breached=False)
            fired.append(("warning", at))
        else:
            deadline = deadline.fired(breached=True)
            fired.append(("breach", deadline.due))
    return deadline, fired


def meet(deadline: Deadline, at: datetime) -> Deadline:
    """The deadline met by an act at `at`; late when after the due instant. Met in time, it is not breached,
    whatever was raised before the act was recorded (`withdraws`)."""
    d, late = deadline, at > deadline.due
    return Deadline(d.stage, d.kind, d.visit, d.due, d.warn_at, "met", d.warned, d.breached and late, at, late,
                    d.lateness)


def withdraws(before: Deadline, met: Deadline) -> bool:
    """Whether meeting `before` (giving `met`) withdraws a breach already raised: the act was in time."""
    return before.breached and not met.breached


def cancel(deadline: Deadline) -> Deadline:
    """The deadline ended without being met (withdrawn, closed, escalated before a response)."""
    d = deadline
    return Deadline(d.stage, d.kind, d.visit, d.due, d.warn_at, "cancelled", d.warned, d.breached, d.met_at, d.late,
                    d.lateness)


def suspend(deadline: Deadline) -> Deadline:
    """The deadline with its clock stopped: it neither warns nor breaches until resumed."""
    return deadline._replace(status="suspended")


def move(deadline: Deadline, due: datetime, warn_at: datetime | None, at: datetime) -> Deadline:
    """The deadline with a new agreed target, set at `at`; warning and breach may fire again for it."""
    return deadline._replace(due=due, warn_at=warn_at, warned=warn_at is None or warn_at <= at, breached=False,
                             status="open")


def derived_id(*parts: object) -> str:
    """A deterministic event id from the facts that make a derived event what it is."""
    return _id_of("\x1f".join([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts]))


def _id_of(text: str) -> str:
    return "cf-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def derived_event(source: str, type_: str, subject: str, time: datetime, data: dict[str, Any],
                  *identity: object) -> dict[str, Any]:
    """A derived CloudEvent body whose id depends only on (subject, type, identity)."""
    return {"specversion": "1.0", "id": derived_id(subject, type_, *identity), "source": source, "type": type_,
            "subject": subject, "time": time.isoformat(), "datacontenttype": "application/json",
            "dataschema": schema_urn(type_), "data": data}


def deadline_event(source: str, type_: str, subject: str, time: datetime, deadline: Deadline,
                   data: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A derived event about `deadline` (id from its key and due instant); `data` defaults to `deadline_data`.

    The same as `derived_event(..., deadline.key, deadline.due)`, with the due instant written out once.
    """
    if data is None:
        data = {"stage": deadline.stage, "kind": deadline.kind, "due": deadline.due.isoformat(), **extra}
    return {"specversion": "1.0", "id": deadline_id(subject, type_, deadline), "source": source,
            "type": type_, "subject": subject, "time": time.isoformat(), "datacontenttype": "application/json",
            "dataschema": schema_urn(type_), "data": data}


def deadline_id(subject: str, type_: str, deadline: Deadline) -> str:
    """The id of the `type_` event `deadline_event` derives about `deadline` (its key and due instant)."""
    # The text `derived_id(subject, type_, deadline.key, deadline.due)` hashes, written out directly.
    return _id_of(f"{subject}\x1f{type_}\x1f{deadline.stage}:{deadline.visit}:{deadline.kind}\x1f"
                  f"{deadline.due.isoformat()}")


def breach_withdrawn(source: str, breach_type: str, subject: str, met: Deadline) -> dict[str, Any]:
    """The `deadline.breach_withdrawn` of `met`'s breach (a `breach_type` event): dated at the act that met it."""
    assert met.met_at is not None
    data = {"stage": met.stage, "kind": met.kind, "due": met.due.isoformat(),
            "breached_id": deadline_id(subject, breach_type, met), "met_at": met.met_at.isoformat()}
    return deadline_event(source, WITHDRAWN_TYPE, subject, met.met_at, met, data)


def deadline_data(deadline: Deadline, **extra: Any) -> dict[str, Any]:
    """The contract's `data` of a deadline event."""
    return {"stage": deadline.stage, "kind": deadline.kind, "due": deadline.due.isoformat(), **extra}


def to_json(deadline: Deadline) -> dict[str, Any]:
    """A deadline as JSON-ready data."""
    out: dict[str, Any] = {}
    for name in ("stage", "kind", "visit", "status", "warned", "breached", "late"):
        out[name] = getattr(deadline, name)
    for name in ("due", "warn_at", "met_at"):
        value = getattr(deadline, name)
        out[name] = value.isoformat() if value is not None else None
    if deadline.lateness:  # only where a lateness is declared: every other stored state stays as it was
        out["lateness_s"] = deadline.lateness.total_seconds()
    return out


def from_json(data: dict[str, Any]) -> Deadline:
    """The inverse of `to_json`."""
    times = {n: (datetime.fromisoformat(data[n]) if data.get(n) else None) for n in ("due", "warn_at", "met_at")}
    due = times["due"]
    assert due is not None
    return Deadline(data["stage"], data["kind"], int(data["visit"]), due, times["warn_at"], data["status"],
                    bool(data["warned"]), bool(data["breached"]), times["met_at"], data.get("late"),
                    timedelta(seconds=float(data.get("lateness_s") or 0)))


State = TypeVar("State")


@dataclass
class Decision(Generic[State]):
    """A case's state after an event, the events it derived, and why it was refused (if it was).

    `reason` says what a refusal is. The acts of the history were judged at the door
    (`services.cases`): an act the one judgement refuses (recorded under contract 1.1) is skipped with
    the judgement's reason (`not_allowed`, `inconsistent`) and never dead-lettered; an act the
    judgement admits that the service still cannot apply is `internal`, a fault of that service that
    it dead-letters and an alert rule reports (contract 11.1).
    """

    state: State | None
    derived: list[dict[str, Any]] = field(default_factory=list)
    refusal: str | None = None
    reason: str = "internal"


# Errors a body missing a field or holding a value of the wrong shape raises in a domain handler.
INTERNAL = "internal"  # the dead-letter reason of a service's own fault
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def decide_safely(decide: Callable[[State | None, dict[str, Any]], Decision[State]], state: State | None,
                  body: dict[str, Any]) -> Decision[State]:
    """`decide(state, body)`; when it raises, that one event is refused and the case stays as it was.

    The live engine and replay both call this, so an event a domain step cannot apply leaves live and
    replayed state equal, and never stops a service.
    """
    try:
        return decide(state, body)
    except ConfigurationError:  # the worker lacks a procedure document: not this event's fault (it reloads them)
        raise
    except Exception as exc:  # a history event the step cannot apply is a fault of the service (contract 11.1)
        return Decision(state, refusal=_failure(body, exc), reason=INTERNAL)


def _failure(body: dict[str, Any], exc: Exception) -> str:
    return f"{body.get('type')} cannot be applied: {type(exc).__name__} {exc}"


@dataclass
class Fired:
    """What firing a case's deadlines produced."""

    deadlines: list[Deadline] = field(default_factory=list)
    firings: list[tuple[Deadline, Firing, datetime]] = field(default_factory=list)


def any_due(deadlines: Iterable[Deadline], until: datetime) -> bool:
    """Whether any of `deadlines` has a warning or breach due at or before `until`."""
    for deadline in deadlines:
        at = deadline.next_fire_at()
        if at is not None and at <= until:
            return True
    return False


def fire_all(deadlines: list[Deadline], until: datetime) -> Fired:
    """Fire every deadline of a case up to `until`; firings sorted by time then key."""
    out = Fired()
    for deadline in deadlines:
        after, fired = fire(deadline, until)
        out.deadlines.append(after)
        out.firings.extend((after, kind, at) for kind, at in fired)
    out.firings.sort(key=lambda f: (f[2], f[0].key, f[1]))
    return out
