"""Replay reads every case's acts through the one judgement (contract 11.1) and lists the acts it refuses.

A history recorded under contract 1.1 may hold acts that 1.2 refuses (an escalation to a stage the
procedure lacks, say). Every reader skips them alike, so they are no difference; replay names each:
its seq, case, type, the judgement's reason and detail. The acts of a case are judged in history
order with `rules.tell`, exactly as intake judged them at the door and `history` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import asyncpg

from services.audit.differences import Difference
from services.cases import rules
from services.cases.story import JUDGED_TYPES, Case, act_of
from services.common.eventstore import StoredEvent
from services.deadlines import store as deadlines_store
from services.deadlines.procedures import ProcedureBook


class RefusedAct(NamedTuple):
    """An act in the history that the judgement refuses, and why."""

    seq: int
    subject: str
    type: str
    reason: str  # not_allowed or inconsistent
    detail: str

    def __str__(self) -> str:
        return f"seq {self.seq} {self.subject} {self.type}: {self.reason}: {self.detail}"


@dataclass
class Judgement:
    """Each case's acts folded through `rules.tell` in history order; the refused ones kept in `refused`.

    Run beside the projections (the same `apply`, `prepare` and `finish`), never compared with a live state.
    """

    book: ProcedureBook
    name: str = "judgement"
    cases: dict[str, Case] = field(default_factory=dict)
    refused: list[RefusedAct] = field(default_factory=list)

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Every procedure version the services stored (cases keep the version they were received under)."""
        if await conn.fetchval("SELECT to_regclass('procedure_documents') IS NOT NULL"):
            await deadlines_store.load_procedures(conn, self.book)

    async def follow(self, conn: asyncpg.Connection) -> list[Difference]:
        """The whole history is judged, whatever the services have applied."""
        return []

    def apply(self, event: StoredEvent) -> list[Difference]:
        """Judge the event if it is a case's act; note it when refused."""
        if event.type not in JUDGED_TYPES:
            return []
        act = act_of(event.body, event.time)
        if act is None:
            return []
        told = rules.tell((act,), self.book, self.cases.get(event.subject))
        self.cases[event.subject] = told.case
        self.refused += (RefusedAct(event.seq, event.subject, a.type, r.reason, r.detail) for a, r in told.refused)
        return []

    def finish(self) -> list[Difference]:
        """Nothing is left over: refusals are listed, not differences."""
        return []

    def state(self) -> Mapping[str, Any]:
        """Nothing to compare."""
        return {}

    def absorb(self, state: Mapping[str, Any]) -> None:
        """Nothing to add up: each shard lists its own cases' refusals."""

    async def live_state(self, conn: asyncpg.Connection) -> Mapping[str, Any] | None:
        """No live counterpart."""
        return None
