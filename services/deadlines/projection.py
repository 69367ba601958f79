"""The declaration of a case projection (escalation's, learning's): everything the live worker and
`casefeedback replay` run, in one place, so both run exactly the same thing.

A service declares its pure `decide` and `fire_due`, its codec (state to the JSON its table holds and
back), the history types it acts on, its state table, and how to load and compare its live state.
The live worker builds its engine `Tracker` from the declaration (`tracker`); replay folds the same
`decide` over the history (`services/audit/rebuild.py`) and compares with `load_live`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar

import asyncpg

from services.deadlines.engine import Tracker
from services.deadlines.procedures import ProcedureBook
from services.deadlines.timers import Deadline

S = TypeVar("S")


@dataclass(frozen=True)
class CaseProjection(Generic[S]):
    """One deriving service's projection: its pure functions, codec, storage and live state."""

    name: str  # the service, and the `owner` of its rows in the shared `deadlines` table
    table: str
    source: str  # the `source` of the events it derives
    types: tuple[str, ...]  # the history types `decide` acts on
    decide: Callable[[S | None, dict[str, Any], ProcedureBook], Any]
    fire_due: Callable[[S, datetime], tuple[S, list[dict[str, Any]]]]
    encode: Callable[[S], dict[str, Any]]
    decode: Callable[[dict[str, Any]], S]
    deadlines: Callable[[S], Sequence[Deadline]]
    columns: Callable[[S], tuple[bool, str, str]]  # open, stage, service_area
    load_live: Callable[[asyncpg.Connection], Awaitable[Mapping[str, S]]]
    comparable: Callable[[S], S] | None = None  # what replay's comparison ignores (None: the whole state)

    def decide_with(self, book: ProcedureBook) -> Callable[[S | None, dict[str, Any]], Any]:
        """`decide` under the procedures of `book`."""
        # A partial, not a lambda: replay and the engine call it for every event.
        return partial(self.decide, book=book)  # type: ignore[call-arg]

    def tracker(self, book: ProcedureBook) -> Tracker[S]:
        """The declaration wired for the shared engine (what the live worker runs)."""
        return Tracker(self.name, self.table, self.source, self.types, self.decide_with(book), self.fire_due,
                       self.encode, self.decode, self.deadlines, self.columns)
