"""Learning's projection, as the live worker and replay both run it (`services/audit/projections.py`
lists every projection)."""

from __future__ import annotations

from services.cases.story import JUDGED_TYPES
from services.deadlines.projection import CaseProjection
from services.learning import adapters, codec, domain
from services.learning.domain import CaseLearning


def _columns(state: CaseLearning) -> tuple[bool, str, str]:
    return state.open_stage() is not None, domain.STAGE, state.service_area


def _without_held(state: CaseLearning) -> CaseLearning:
    # The live worker drops held events past their grace time by the wall clock, which the history does
    # not record (the domain's docstring): held events are left out of replay's comparison.
    return domain.drop_held(state)[0]


PROJECTION: CaseProjection[CaseLearning] = CaseProjection(
    name=adapters.OWNER, table=adapters.TABLE, source=domain.SOURCE,
    types=tuple(sorted({*JUDGED_TYPES, *domain.HANDLERS})),  # every act of a case: its story needs them all
    decide=domain.decide, fire_due=domain.fire_due, encode=codec.encode, decode=codec.decode,
    deadlines=lambda state: state.deadlines(), columns=_columns, load_live=adapters.load_live_state,
    comparable=_without_held)
