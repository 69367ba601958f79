"""Adapters that plug each service's pure domain into replay (see `projections.py`).

Every service that derives events exposes `decide(state, body, ...) -> Decision(state, derived)` per
subject in seq order (issue 4/5 contract, `services/escalation/domain.py`). `DerivingProjection`
runs it over the history and checks, event by event, that every derived event the service recorded
(its `source`) is one the domain derives again with the same id and the same body, and, at the end,
that every event the domain derives was recorded. A plugin whose module is not installed yet is
simply not in the run (its factory returns None).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg

from services.audit.projections import Difference, Factory, Projection
from services.common.eventstore import StoredEvent
from services.common.settings import Settings
from services.deadlines.timers import decide_safely

Decide = Callable[[Any, dict[str, Any]], Any]
LiveLoader = Callable[[asyncpg.Connection], Any]


@dataclass
class DerivingProjection:
    """Rebuilds one service's per-subject state and re-derives the events that service recorded."""

    name: str
    source: str
    decide: Decide
    live_loader: LiveLoader | None = None
    preparer: LiveLoader | None = None
    types: frozenset[str] | None = None  # the types `decide` acts on; others leave the state as it is
    normalise: Callable[[Any], Any] | None = None  # what comparison ignores (e.g. learning's held events)
    states: dict[str, Any] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Load what the domain needs from the database before the first event (e.g. stored procedures)."""
        if self.preparer is not None:
            await self.preparer(conn)

    def apply(self, event: StoredEvent) -> list[Difference]:
        """Decide the event for its subject, then match it if this service recorded it."""
        body = event.body
        if self.types is not None and event.type not in self.types:
            return self._match(event) if body.get("source") == self.source else []
        # The live engine's own guard: an event whose decide raises is refused and leaves the state as it was.
        decision = decide_safely(self.decide, self.states.get(event.subject), body)
        if decision.state is not None:
            self.states[event.subject] = decision.state
        for derived in decision.derived:
            self.pending.setdefault(str(derived["id"]), derived)
        return self._match(event) if body.get("source") == self.source else []

    def _match(self, event: StoredEvent) -> list[Difference]:
        expected = self.pending.pop(event.id, None)
        if expected is None:
            return [Difference(self.name, event.subject, f"recorded {event.type} {event.id} (seq {event.seq}) "
                                                         "is not derived again from the history before it")]
        if expected != event.body:  # JSON-equal bodies are equal dicts (same digest)
            what = f"recorded {event.type} {event.id} (seq {event.seq}) differs from the re-derived one"
            return [Difference(self.name, event.subject, f"{what}: {_diff(expected, event.body)}")]
        return []

    def finish(self) -> list[Difference]:
        """Every derived event the domain expects but the history does not hold."""
        return [Difference(self.name, str(e["subject"]), f"{e['type']} {e['id']} (due to the domain) was never "
                                                         "recorded") for e in self.pending.values()]

    def state(self) -> Mapping[str, Any]:
        """The rebuilt per-subject state (normalised for comparison)."""
        return _normalised(self.states, self.normalise)

    def absorb(self, state: Mapping[str, Any]) -> None:
        """Take in the state another replay shard rebuilt (its subjects are not this one's)."""
        self.states.update(state)

    async def live_state(self, conn: asyncpg.Connection) -> Mapping[str, Any] | None:
        """The service's own tables, through its `load_live_state` adapter, when it has one."""
        if self.live_loader is None:
            return None
        live: Mapping[str, Any] = await self.live_loader(conn)
        return _normalised(live, self.normalise)


def _normalised(states: Mapping[str, Any], normalise: Callable[[Any], Any] | None) -> Mapping[str, Any]:
    return states if normalise is None else {k: normalise(v) for k, v in states.items()}


def _diff(expected: dict[str, Any], recorded: dict[str, Any]) -> str:
    keys = sorted(set(expected) | set(recorded))
    parts = [f"{k}: expected {expected.get(k)!r}, recorded {recorded.get(k)!r}"
             for k in keys if expected.get(k) != recorded.get(k)]
    return "; ".join(parts)[:500]


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _deriving(name: str, package: str, settings: Settings,
              normalise: Callable[[Any], Any] | None = None) -> Projection | None:
    """A service's domain (`decide`, `SOURCE`) and adapters (`load_live_state`, `TYPES`) as a projection."""
    domain = _optional(f"{package}.domain")
    if domain is None or not hasattr(domain, "decide"):
        return None
    from services.deadlines.procedures import load_book

    book = load_book(settings.procedures_dir, settings.default_procedure)
    adapters = _optional(f"{package}.adapters")
    loader = getattr(adapters, "load_live_state", None)
    types = getattr(adapters, "TYPES", None)
    return DerivingProjection(name, domain.SOURCE, functools.partial(domain.decide, book=book), loader,
                              _procedure_loader(book), frozenset(types) if types else None, normalise)


def _escalation(settings: Settings) -> Projection | None:
    return _deriving("escalation", "services.escalation", settings)


def _learning(settings: Settings) -> Projection | None:
    domain = _optional("services.learning.domain")
    drop_held = getattr(domain, "drop_held", None)
    # The live worker drops held events past their grace time by the wall clock, which the history does
    # not record (learning's domain docstring): held events are left out of the comparison.
    return _deriving("learning", "services.learning", settings,
                     (lambda state: drop_held(state)[0]) if drop_held else None)


def _procedure_loader(book: Any) -> LiveLoader | None:
    """Every procedure version the services stored (cases keep the version they were received under)."""
    store = _optional("services.deadlines.store")
    load = getattr(store, "load_procedures", None)
    if load is None:
        return None

    async def prepare(conn: asyncpg.Connection) -> None:
        if await conn.fetchval("SELECT to_regclass('procedure_documents') IS NOT NULL"):
            await load(conn, book)
    return prepare


# The consumer group of the running metrics service (`Worker.group`); its counts are the live state.
METRICS_GROUP = "casefeedback-metrics"


@dataclass
class MetricsProjection:
    """Rebuilds the metrics service's per-day counts and survey definitions from the history.

    The live tables split counts by partition of `casefeedback.events`; replay does not know the
    partitions (the broker chose them by key), so it compares the counts summed over partitions.
    """

    domain: Any
    sets: Any
    name: str = "metrics"
    per_subject: ClassVar[bool] = False  # counts add up over subjects: parallel replay sums its shards' states
    buckets: dict[Any, dict[int, int]] = field(default_factory=dict)
    surveys: dict[str, int] = field(default_factory=dict)
    absorbed: dict[str, Any] = field(default_factory=dict)

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Nothing to read beforehand."""

    def apply(self, event: StoredEvent) -> list[Difference]:
        """Count the event as the metrics worker does (events it refuses are skipped, as it dead-letters them)."""
        if event.type not in self.domain.COUNTERS and event.type != "survey.defined":
            return []
        try:
            counted = self.domain.count(event.body, 0, event.seq, self.sets)
        except self.domain.BadEvent:
            return []
        if counted.survey is not None:
            self.surveys[event.subject] = max(event.seq, self.surveys.get(event.subject, 0))
        self.domain.add_facts(self.buckets, counted.facts)
        return []

    def finish(self) -> list[Difference]:
        """Nothing is derived by this service."""
        return []

    def state(self) -> Mapping[str, Any]:
        """Counts per bucket (`kind/labels` -> day -> n) and the seq of each survey's definition in force."""
        out: dict[str, Any] = {_bucket_key(k): days for k, days in self.buckets.items()}
        out.update({f"survey/{sid}": seq for sid, seq in self.surveys.items()})
        return add_states(out, self.absorbed) if self.absorbed else out

    def absorb(self, state: Mapping[str, Any]) -> None:
        """Add the counts another replay shard made (counts add up; a survey's latest definition wins)."""
        self.absorbed = add_states(self.absorbed, state)

    async def live_state(self, conn: asyncpg.Connection) -> Mapping[str, Any] | None:
        """The live tables summed over partitions, in the same shape."""
        if not await conn.fetchval("SELECT to_regclass('metrics_buckets') IS NOT NULL"):
            return None
        from services.metrics import store as metrics_store

        partitions = [r["partition"] for r in await conn.fetch(
            "SELECT DISTINCT partition FROM metrics_buckets WHERE grp = $1", METRICS_GROUP)]
        merged = self.domain.merge((await metrics_store.load(conn, METRICS_GROUP, partitions)).values())
        out: dict[str, Any] = {_bucket_key(k): days for k, days in merged.items()}
        out.update({f"survey/{sid}": s.seq for sid, s in (await metrics_store.surveys(conn)).items()})
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


def _metrics(settings: Settings) -> Projection | None:
    domain = _optional("services.metrics.domain")
    if domain is None or not hasattr(domain, "facts_of"):
        return None
    return MetricsProjection(domain, domain.LabelSets.with_areas(settings.service_areas))


# The plugins, in the order replay runs them; each returns None until its service's code exists.
FACTORIES: list[Factory] = [_escalation, _learning, _metrics]
