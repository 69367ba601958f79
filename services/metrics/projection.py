"""The metrics service's projection, as the live worker and replay both run it (`services/audit/projections.py`
lists every projection).

Its state is a sum over subjects (per-day counts per bucket, and each survey's latest definition), so
a parallel replay adds its shards' states up; the live tables split counts by partition of
`casefeedback.events`, which replay does not know (the broker chose them by key), so both sides are
compared summed over partitions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.common.settings import Settings
from services.deadlines.labels import known_stages
from services.deadlines.procedure_files import load_book
from services.metrics import domain, store

GROUP = "casefeedback-metrics"  # the running metrics service's consumer group (`Worker.group`)


@dataclass(frozen=True)
class CountProjection:
    """What one history event counts for (`count`, raising `refused` for an event it cannot count), how
    counts add up, and how to load the live counts."""

    name: str
    group: str
    types: frozenset[str]
    count: Callable[[Mapping[str, Any], int, int, domain.LabelSets], domain.Counted]
    refused: type[Exception]
    add: Callable[[domain.Buckets, list[domain.Fact]], None]
    load_live: Callable[[asyncpg.Connection, str], Awaitable[tuple[domain.Buckets, dict[str, int]] | None]]


PROJECTION = CountProjection(name="metrics", group=GROUP, types=frozenset({*domain.COUNTERS, "survey.defined"}),
                             count=domain.count, refused=domain.BadEvent, add=domain.add_facts,
                             load_live=store.live_counts)


def label_sets(settings: Settings) -> domain.LabelSets:
    """The bounded label sets: the configured label values and the configured procedures' stages."""
    stages = known_stages(load_book(settings.procedures_dir, settings.default_procedure))
    return domain.LabelSets.configured(settings.labels, stages, settings.max_satisfaction_series,
                                       settings.max_survey_questions)
