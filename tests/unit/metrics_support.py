"""Test-side helpers for the metrics domain: figures recomputed from a whole history, and the default sets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.labels import load_labels
from services.deadlines.labels import known_stages
from services.deadlines.procedure_files import load_book
from services.metrics import domain as d

SETS = d.LabelSets.configured(load_labels(), known_stages(load_book()))
RESPONDENT_TYPES = tuple(sorted(SETS.respondent_types))


@dataclass
class Snapshot:
    """Figures as a set of partitions' buckets and the survey definitions (what the collector reads)."""

    buckets: dict[int, d.Buckets] = field(default_factory=dict)
    surveys: dict[str, d.Survey] = field(default_factory=dict)
    sets: d.LabelSets = SETS

    def view(self) -> d.View:
        """These figures as a scrape reads them."""
        return d.View(d.merge(self.buckets.values()), frozenset(self.buckets), self.surveys, self.sets)


def replay(history: Iterable[tuple[int, int, Mapping[str, Any]]], sets: d.LabelSets = SETS) -> Snapshot:
    """Recompute every figure from (partition, seq, body) of the history; refused events are skipped."""
    snap = Snapshot(sets=sets)
    for partition, seq, body in history:
        try:
            counted = d.count(body, partition, seq, sets)
        except d.BadEvent:
            continue
        if counted.survey is not None:
            d.keep_survey(snap.surveys, counted.survey)
        d.add_facts(snap.buckets.setdefault(partition, {}), counted.facts)
    return snap
