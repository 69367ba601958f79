"""Every projection replay rebuilds, in one table, in the order replay runs them.

Each entry is a service's own declaration (its pure decide or count functions, its codec, how to
load its live state); the live workers run the same declarations (`services/escalation/projection.py`,
`services/learning/projection.py`, `services/metrics/projection.py`), and the history's own
projection (`SubjectVersions`) checks each subject's versions. `build_projections` makes the replay
runner of each (`services/audit/rebuild.py`); `build_judgement` the reading of every case's acts through
the one judgement that replay runs beside them (`services/audit/judgement.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from services.audit.differences import Projection
from services.audit.judgement import Judgement
from services.audit.rebuild import CaseRebuild, CountRebuild, SubjectVersions
from services.common.settings import Settings
from services.deadlines.engine import late_decide
from services.deadlines.procedure_files import load_book
from services.deadlines.procedures import ProcedureBook
from services.escalation.projection import PROJECTION as ESCALATION
from services.learning.projection import PROJECTION as LEARNING
from services.metrics.projection import PROJECTION as METRICS
from services.metrics.projection import label_sets

Build = Callable[[Settings], Projection]

# name -> how replay builds its runner from the settings; the history's own first.
PROJECTIONS: dict[str, Build] = {
    "history": lambda settings: SubjectVersions(),
    ESCALATION.name: lambda settings: CaseRebuild(_late(ESCALATION, settings), _book(settings),
                                                  settings.kafka.partitions),
    LEARNING.name: lambda settings: CaseRebuild(_late(LEARNING, settings), _book(settings), settings.kafka.partitions),
    METRICS.name: lambda settings: CountRebuild(METRICS, label_sets(settings), settings.kafka.partitions),
}


def _late(projection: Any, settings: Settings) -> Any:
    """The projection deciding with the declared lateness per source, as the live worker decides (contract 11.2)."""
    return replace(projection, decide=late_decide(projection.decide, settings.source_lateness))


def _book(settings: Settings) -> ProcedureBook:
    return load_book(settings.procedures_dir, settings.default_procedure)


def build_projections(settings: Settings) -> list[Projection]:
    """Every projection's replay runner, in the table's order."""
    return [build(settings) for build in PROJECTIONS.values()]


def build_judgement(settings: Settings) -> Judgement:
    """The one judgement over every case's acts, under the configured procedures."""
    return Judgement(_book(settings))
