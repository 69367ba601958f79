"""Stage order of complaint procedures, as the audit code needs it (highest stage reached, serious start).

When the shared procedure files (services/deadlines) are present their stage lists are used; until
then the built-in procedures of contract section 6 are known here by their stage order only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StageOrder:
    """A procedure's stages in order and the stage serious complaints start at."""

    stages: tuple[str, ...]
    serious_stage: str | None

    def rank(self, stage: str) -> int:
        """Position of `stage` in the procedure; an unknown stage ranks after every known one."""
        return self.stages.index(stage) if stage in self.stages else len(self.stages)


BUILT_IN: dict[str, StageOrder] = {
    "dundee-2011": StageOrder(("level1", "level2", "director", "committee"), "level2"),
    "spso-mchp": StageOrder(("stage1", "stage2"), "stage2"),
}


@lru_cache(maxsize=4)
def _shared_book(procedures_dir: Path | None) -> Any:
    try:  # the shared procedure files (issues 4/5); the built-in table serves until they load
        from services.deadlines.procedures import load_book
        return load_book(procedures_dir)
    except Exception:  # missing module or an unreadable file: fall back rather than fail a report
        return None


def _from_deadlines(procedure_id: str, procedures_dir: Path | None) -> StageOrder | None:
    book = _shared_book(procedures_dir)
    procedure = book.current(procedure_id) if book is not None else None
    if procedure is None:
        return None
    return StageOrder(tuple(procedure.stage_ids()), procedure.serious_stage)


def stage_order(procedure_id: str, procedures_dir: Path | None = None) -> StageOrder:
    """The stage order of a procedure (built-in files plus an operator folder); unknown: as stages are seen."""
    return _from_deadlines(procedure_id, procedures_dir) or BUILT_IN.get(procedure_id) or StageOrder((), None)
