"""What replay reports and what it needs of every projection it runs.

Before comparing with the live state, a projection reads how far its live service has applied the
history (`follow`, in the replay's snapshot) and from then on rebuilds only what that service has
applied (contract 11.3). A projection is fed every history event in seq order (`apply`), says what it found wrong on the
way (a derived event that cannot be re-derived, a version gap), says what is left over at the end
(`finish`: derived events the domain expects but the history lacks), and hands over its rebuilt
state (`state`) for comparison with what the live service holds (`live_state`, None when the
service keeps no comparable state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from services.common.eventstore import StoredEvent


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

    @property
    def name(self) -> str:
        """The projection's name, as differences and the summary show it."""
    # Optional, True when absent: the state is keyed by subject, so a parallel replay shard compares its own
    # subjects with the live state. False: the state sums over subjects and shards' states are added up.
    # per_subject: bool
    # Optional, 0 when absent: how many events of its types it left out as not yet applied by the live service.
    # unapplied: int

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Read what the projection needs before the first event (stored procedure versions)."""

    async def follow(self, conn: asyncpg.Connection) -> list[Difference]:
        """Rebuild only what the live service has applied: read its positions (in the replay's snapshot); what
        makes them unusable is a difference. Called before the first event, only when comparing with live."""

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
