"""How replay runs each kind of projection declaration over the history, in memory.

- `SubjectVersions`: the history's own projection (each subject's versions run 1, 2, 3, ...).
- `CaseRebuild`: a case projection (`services/deadlines/projection.py`: escalation, learning). It folds
  the declared `decide` per subject in seq order, through `timers.decide_safely` as the live engine
  does, and checks, event by event, that every derived event the service recorded (its `source`) is
  one the domain derives again with the same id and the same body, and, at the end, that every event
  the domain derives was recorded; its state is compared with the declared live loader's.
- `CountRebuild`: the metrics declaration (`services/metrics/projection.py`): the declared `count`
  per event, counts summed.

When replay compares with the live state, each of the services' projections first reads its service's
positions (`follow`, `services/audit/applied.py`) and then leaves out every event that service has
not applied yet; a case projection keeps every event its service derived itself, whatever its seq
(recorded in the same transaction as the state it changed, or by a tick at the wall clock: done work).
Timers fire in replay only where the history shows the service fired them or an applied event's time
passed them, never at the replay's own clock, so a tick that has not fired yet is no difference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg

from schemas.upcast import schema_urn
from services.audit.applied import Positions, consumer_group, misplaced, positions_of
from services.audit.differences import Difference
from services.common.eventstore import StoredEvent
from services.common.settings import KafkaSettings
from services.deadlines import store as deadlines_store
from services.deadlines.procedures import ProcedureBook
from services.deadlines.projection import CaseProjection
from services.deadlines.timers import decide_safely
from services.metrics import domain as metrics_domain
from services.metrics.projection import CountProjection


@dataclass
class SubjectVersions:
    """Checks that each subject's versions run 1, 2, 3, ... with no gap (the history's own projection)."""

    name: str = "history"
    versions: dict[str, int] = field(default_factory=dict)

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Nothing to read beforehand."""

    async def follow(self, conn: asyncpg.Connection) -> list[Difference]:
        """The history's own projection follows the whole history."""
        return []

    def apply(self, event: StoredEvent) -> list[Difference]:
        """Note the subject's version; a gap or a repeat is a difference."""
        subject, version, body = event.subject, event.version, event.body
        expected = self.versions.get(subject, 0) + 1
        self.versions[subject] = version
        if version != expected:
            return [Difference(self.name, subject, f"version {version} at seq {event.seq}, expected {expected}")]
        if body.get("id") != event.id or body.get("subject") != subject:
            return [Difference(self.name, subject, f"seq {event.seq}: body id/subject differ from the row's")]
        return []

    def finish(self) -> list[Difference]:
        """Nothing is left over for this projection."""
        return []

    def state(self) -> Mapping[str, Any]:
        """The current version of every subject."""
        return self.versions

    def absorb(self, state: Mapping[str, Any]) -> None:
        """Take in another shard's subjects."""
        self.versions.update(state)

    async def live_state(self, conn: asyncpg.Connection) -> Mapping[str, Any] | None:
        """Nothing to compare: the history itself is the live state."""
        return None


@dataclass
class CaseRebuild:
    """Rebuilds one case projection's per-subject state and re-derives the events that service recorded."""

    declared: CaseProjection[Any]
    book: ProcedureBook
    partitions: int = KafkaSettings.partitions  # of casefeedback.events
    states: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: Positions | None = None  # how far the live service has applied (None: the whole history)
    unapplied: int = 0
    decide: Callable[[Any, dict[str, Any]], Any] = field(init=False)
    types: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.decide = self.declared.decide_with(self.book)
        self.types = frozenset(self.declared.types)

    @property
    def name(self) -> str:
        return self.declared.name

    @property
    def source(self) -> str:
        return self.declared.source

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Every procedure version the services stored (cases keep the version they were received under)."""
        if await conn.fetchval("SELECT to_regclass('procedure_documents') IS NOT NULL"):
            await deadlines_store.load_procedures(conn, self.book)

    async def follow(self, conn: asyncpg.Connection) -> list[Difference]:
        """Read the service's positions; its stored cases must sit on the partitions replay places them on."""
        self.positions = await positions_of(conn, consumer_group(self.name), self.partitions)
        return await misplaced(conn, self.name, self.declared.table, self.partitions)

    def apply(self, event: StoredEvent) -> list[Difference]:
        """Decide the event for its subject, then match it if this service recorded it (events the service has
        not applied yet, when following its positions, are left out)."""
        body = event.body
        mine = body.get("source") == self.declared.source
        if not mine and self.positions is not None and not self.positions.applied(event.subject, event.seq):
            self.unapplied += event.type in self.types
            return []
        if event.type in self.types:
            # The live engine's own guard: an event whose decide raises is refused and leaves the state as it was.
            decision = decide_safely(self.decide, self.states.get(event.subject), body)
            if decision.state is not None:
                self.states[event.subject] = decision.state
            for derived in decision.derived:
                self.pending.setdefault(str(derived["id"]), derived)
        return self._match(event) if mine else []

    def _match(self, event: StoredEvent) -> list[Difference]:
        expected = self.pending.pop(event.id, None)
        if expected is None:
            return [Difference(self.name, event.subject, f"recorded {event.type} {event.id} (seq {event.seq}) "
                                                         "is not derived again from the history before it")]
        if "dataschema" not in event.body and expected.get("dataschema") == schema_urn(event.type, 1):
            # recorded before derived events said their payload version: version 1, as derived again
            expected = {k: v for k, v in expected.items() if k != "dataschema"}
        if expected != event.body:  # JSON-equal bodies are equal dicts (same digest)
            what = f"recorded {event.type} {event.id} (seq {event.seq}) differs from the re-derived one"
            return [Difference(self.name, event.subject, f"{what}: {_diff(expected, event.body)}")]
        return []

    def finish(self) -> list[Difference]:
        """Every derived event the domain expects but the history does not hold."""
        return [Difference(self.name, str(e["subject"]), f"{e['type']} {e['id']} (due to the domain) was never "
                                                         "recorded") for e in self.pending.values()]

    def state(self) -> Mapping[str, Any]:
        """The rebuilt per-subject state, as the declaration compares it."""
        return _normalised(self.states, self.declared.comparable)

    def absorb(self, state: Mapping[str, Any]) -> None:
        """Take in the state another replay shard rebuilt (its subjects are not this one's)."""
        self.states.update(state)

    async def live_state(self, conn: asyncpg.Connection) -> Mapping[str, Any] | None:
        """The service's own tables, through its declared loader."""
        return _normalised(await self.declared.load_live(conn), self.declared.comparable)


def _normalised(states: Mapping[str, Any], normalise: Callable[[Any], Any] | None) -> Mapping[str, Any]:
    return states if normalise is None else {k: normalise(v) for k, v in states.items()}


def _diff(expected: dict[str, Any], recorded: dict[str, Any]) -> str:
    keys = sorted(set(expected) | set(recorded))
    parts = [f"{k}: expected {expected.get(k)!r}, recorded {recorded.get(k)!r}"
             for k in keys if expected.get(k) != recorded.get(k)]
    return "; ".join(parts)[:500]


@dataclass
class CountRebuild:
    """Rebuilds the metrics service's per-day counts and survey definitions from the history.

    The live tables split counts by partition of `casefeedback.events`; replay does not know the
    partitions (the broker chose them by key), so it compares the counts summed over partitions.
    """

    declared: CountProjection
    sets: metrics_domain.LabelSets
    partitions: int = KafkaSettings.partitions  # of casefeedback.events
    per_subject: ClassVar[bool] = False  # counts add up over subjects: parallel replay sums its shards' states
    buckets: metrics_domain.Buckets = field(default_factory=dict)
    surveys: dict[str, int] = field(default_factory=dict)
    absorbed: dict[str, Any] = field(default_factory=dict)
    positions: Positions | None = None  # how far the live service has applied (None: the whole history)
    unapplied: int = 0

    @property
    def name(self) -> str:
        return self.declared.name

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Nothing to read beforehand."""

    async def follow(self, conn: asyncpg.Connection) -> list[Difference]:
        """Read the metrics service's positions."""
        self.positions = await positions_of(conn, self.declared.group, self.partitions)
        return []

    def apply(self, event: StoredEvent) -> list[Difference]:
        """Count the event as the metrics worker does (events it refuses are skipped, as it dead-letters them;
        events it has not applied yet, when following its positions, are left out)."""
        if event.type not in self.declared.types:
            return []
        if self.positions is not None and not self.positions.applied(event.subject, event.seq):
            self.unapplied += 1
            return []
        try:
            counted = self.declared.count(event.body, 0, event.seq, self.sets)
        except self.declared.refused:
            return []
        if counted.survey is not None:
            self.surveys[event.subject] = max(event.seq, self.surveys.get(event.subject, 0))
        self.declared.add(self.buckets, counted.facts)
        return []

    def finish(self) -> list[Difference]:
        """Nothing is derived by this service."""
        return []

    def state(self) -> Mapping[str, Any]:
        """Counts per bucket (`kind/labels` -> day -> n) and the seq of each survey's definition in force."""
        out = _comparable(self.buckets, self.surveys)
        return add_states(out, self.absorbed) if self.absorbed else out

    def absorb(self, state: Mapping[str, Any]) -> None:
        """Add the counts another replay shard made (counts add up; a survey's latest definition wins)."""
        self.absorbed = add_states(self.absorbed, state)

    async def live_state(self, conn: asyncpg.Connection) -> Mapping[str, Any] | None:
        """The live tables summed over partitions, in the same shape."""
        live = await self.declared.load_live(conn, self.declared.group)
        return None if live is None else _comparable(*live)


def _comparable(buckets: metrics_domain.Buckets, surveys: Mapping[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {_bucket_key(k): days for k, days in buckets.items()}
    out.update({f"survey/{sid}": seq for sid, seq in surveys.items()})
    return out


def add_states(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Two metrics states as one: per-day counts added, survey seqs the later of the two."""
    out = dict(a)
    for key, value in b.items():
        held = out.get(key)
        if held is None:
            out[key] = dict(value) if isinstance(value, dict) else value
        elif isinstance(value, dict):
            out[key] = {day: held.get(day, 0) + value.get(day, 0) for day in set(held) | set(value)}
        else:
            out[key] = max(held, value)
    return out


def _bucket_key(key: tuple[str, tuple[str, ...]]) -> str:
    return f"{key[0]}/{'/'.join(key[1])}"


