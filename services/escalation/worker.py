"""Escalation's worker: keeps every complaint's stage and deadlines from the history.

Live and replay stay equal because (1) every event is applied after firing the case's timers due
by its event time, (2) the wall-clock tick fires a case's timers only once every history event
of that case has been applied (`store.pending_subjects`), and (3) replay treats the recorded
`deadline.warning`/`deadline.breached` events as the moments they fired. A warning or breach
the tick raised before a late-arriving act (e.g. history from 2011 entered in 2026) is part of
the record; the act is then met with `late` judged from event times alone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.common.figures import fold
from services.common.settings import Settings
from services.deadlines import labels
from services.deadlines.engine import Tracker
from services.deadlines.worker import TrackingWorker
from services.escalation import adapters, metrics
from services.escalation.domain import CaseState
from services.escalation.projection import PROJECTION


class EscalationWorker(TrackingWorker):
    """Keeps every complaint's deadlines from the history."""

    name = "escalation"

    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer):
        super().__init__(settings, pool, producer)
        self.breaches: Counter[tuple[int, str, str]] = Counter()  # (partition, stage, kind) -> in the history
        self.breaches_read_to = 0  # the history seq `breaches` covers
        self.stages = labels.known_stages(self.book)

    def make_tracker(self) -> Tracker[CaseState]:
        return PROJECTION.tracker(self.book)

    def _stage(self, stage: str) -> str:
        return fold(stage, self.stages)

    def _area(self, area: str) -> str:
        return self.settings.labels.service_area(area)

    async def refresh_gauges(self, conn: asyncpg.Connection, partitions: list[int], now: datetime) -> None:
        opened: dict[tuple[str, str], int] = defaultdict(int)
        for r in await adapters.open_counts(conn, partitions):
            opened[(self._stage(r["stage"]), self._area(r["service_area"]))] += r["n"]
        overdue: dict[tuple[str, str], int] = defaultdict(int)
        for r in await adapters.overdue_counts(conn, partitions):
            overdue[(self._stage(r["stage"]), r["kind"])] += r["n"]
        timely = await adapters.timeliness(conn, partitions, now)
        await self._refresh_breaches(conn, partitions)
        _set(metrics.COMPLAINTS_OPEN, opened)
        _set(metrics.DEADLINES_OVERDUE, overdue)
        self._set_timeliness(timely)

    async def _refresh_breaches(self, conn: asyncpg.Connection, partitions: list[int]) -> None:
        """Add the breaches recorded since the last look, and export the owned partitions' totals (metrics module)."""
        self.breaches_read_to, rows = await adapters.breaches_after(conn, self.breaches_read_to)
        for r in rows:
            self.breaches[(r["partition"], self._stage(r["stage"]), r["kind"])] += r["n"]
        values = {(stage, kind, str(p)): 0 for p in partitions for stage, kind in labels.known_deadlines(self.book)}
        for (p, stage, kind), n in self.breaches.items():
            if p in partitions:
                values[(stage, kind, str(p))] = n
        metrics.DEADLINES_BREACHED.set(values)

    def _set_timeliness(self, rows: list[asyncpg.Record]) -> None:
        counted: dict[tuple[str, ...], int] = defaultdict(int)
        met: dict[tuple[str, ...], int] = defaultdict(int)
        for r in rows:
            key = (self._stage(r["stage"]), r["kind"], r["window"])
            counted[key] += r["counted"]
            met[key] += r["met"]
        _set(metrics.TIMELINESS_COUNTED, counted)
        _set(metrics.TIMELINESS_MET, met)
        _set(metrics.TIMELINESS_RATIO, {k: met[k] / n for k, n in counted.items() if n})


def _set(gauge: Any, values: Mapping[Any, float]) -> None:
    gauge.clear()
    for names, value in values.items():
        gauge.labels(*names).set(value)
