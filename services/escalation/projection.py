"""Escalation's projection, as the live worker and replay both run it (`services/audit/projections.py`
lists every projection)."""

from __future__ import annotations

from services.cases.story import JUDGED_TYPES, WORKLIST_STATUSES
from services.deadlines.projection import CaseProjection
from services.escalation import adapters, codec, domain
from services.escalation.domain import CaseState


def _columns(state: CaseState) -> tuple[bool, str, str]:
    """`open` is true for the cases `casefeedback cases` lists (status open, suspended or responded)."""
    return state.status in WORKLIST_STATUSES, state.stage, state.service_area


PROJECTION: CaseProjection[CaseState] = CaseProjection(
    name=adapters.OWNER, table=adapters.TABLE, source=domain.SOURCE,
    types=tuple(sorted({*JUDGED_TYPES, *domain.HANDLERS})),  # every act of a case: its story needs them all
    decide=domain.decide, fire_due=domain.fire_due, encode=codec.encode, decode=codec.decode,
    deadlines=lambda state: state.deadlines, columns=_columns, load_live=adapters.load_live_state)
