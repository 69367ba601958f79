"""The projection registry: what replay rebuilds, and how each part plugs in.

A projection is fed every history event in seq order (`apply`), says what it found wrong on the
way (a derived event that cannot be re-derived, a version gap), says what is left over at the end
(`finish`: derived events the domain expects but the history lacks), and hands over its rebuilt
state (`state`) for comparison with what the live service holds (`live_state`, None when the
service keeps no comparable state). Each service's pure domain plugs in through a small adapter
in `services/audit/plugins.py`; `REGISTRY` lists the factories in the order replay runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from services.common.eventstore import StoredEvent
from services.common.settings import Settings


@dataclass(frozen=True)
class Difference:
    """One thing the replay found that does not match: which projection, which subject, what."""

    projection: str
    subject: str
    detail: str
    seq: int | None = None  # where in the history it was found (None: at the end, or in the live state)

    def __str__(self) -> str:
        return f"{self.subject} ({self.projection}): {self.detail}"


class Projection(Protocol):
    """What replay needs of every projection."""

    name: str
    # Optional, True when absent: the state is keyed by subject, so a parallel replay shard compares its own
    # subjects with the live state. False: the state sums over subjects and shards' states are added up.
    # per_subject: bool

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Read what the projection needs before the first event (stored procedure versions)."""

    def apply(self, event: StoredEvent) -> list[Difference]:
        """Take one history event (seq order) into the rebuilt state; report what does not re-derive."""

    def finish(self) -> list[Difference]:
        """Report anything left unmatched once the whole history has been read."""

    def state(self) -> Mapping[str, Any]:
        """The rebuilt state, keyed by subject (or another stable key), comparable with `live_state`."""

    def absorb(self, state: Mapping[str, Any]) -> None:
        """Take in the state a parallel replay shard rebuilt from its share of the subjects."""

    async def live_state(self, conn: asyncpg.Connection) -> Mapping[str, Any] | None:
        """The live service's state in the same shape, or None when there is nothing to compare."""


@dataclass
class SubjectVersions:
    """Checks that each subject's versions run 1, 2, 3, ... with no gap (the history's own projection)."""

    name: str = "history"
    versions: dict[str, int] = field(default_factory=dict)

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Nothing to read beforehand."""

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


def compare(name: str, rebuilt: Mapping[str, Any], live: Mapping[str, Any]) -> list[Difference]:
    """Every key whose rebuilt and live values differ (missing on either side included), sorted by key."""
    out = []
    for key in sorted(set(rebuilt) | set(live), key=str):
        if key not in live:
            out.append(Difference(name, str(key), "rebuilt from the history but missing from the live state"))
        elif key not in rebuilt:
            out.append(Difference(name, str(key), "in the live state but not derivable from the history"))
        elif rebuilt[key] != live[key]:
            out.append(Difference(name, str(key), f"rebuilt {rebuilt[key]!r} but live {live[key]!r}"))
    return out


Factory = Callable[[Settings], Projection | None]


def _history(settings: Settings) -> Projection:
    return SubjectVersions()


def registry() -> list[Factory]:
    """Every projection factory, the history's own first; plugins that are not available yet return None."""
    from services.audit import plugins

    return [_history, *plugins.FACTORIES]


def build_projections(settings: Settings) -> list[Projection]:
    """The projections available in this installation."""
    built = (factory(settings) for factory in registry())
    return [p for p in built if p is not None]
