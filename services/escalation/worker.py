"""Escalation's worker: keeps every complaint's stage and deadlines from the history.

Live and replay stay equal because (1) every event is applied after firing the case's timers due
by its event time, (2) the wall-clock tick fires a case's timers only once every history event
of that case has been applied (`store.pending_subjects`), and (3) replay treats the recorded
`deadline.warning`/`deadline.breached` events as the moments they fired. A warning or breach
the tick raised before a late-arriving act (e.g. history from 2011 entered in 2026) is part of
the record; the act is then met with `late` judged from event times alone.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from services.common import figures
from services.common.figures import fold
from services.common.settings import Settings
from services.deadlines import labels
from services.deadlines.engine import Tracker
from services.deadlines.worker import TrackingWorker
from services.escalation import adapters, metrics
from services.escalation.domain import CaseState
from services.escalation.projection import PROJECTION

# The windowed figures (timeliness, outcomes of complaints received) read every deadline and complaint of
# the longest window: refreshed less often than the other gauges.
WINDOWED_REFRESH_S = 5.0


class EscalationWorker(TrackingWorker):
    """Keeps every complaint's deadlines from the history."""

    name = "escalation"

    def __init__(self, settings: Settings, pool: asyncpg.Pool, producer: AIOKafkaProducer):
        super().__init__(settings, pool, producer)
        # per history type (breached, withdrawn): (partition, procedure, stage, kind) -> how many
        self.breaches: dict[str, Counter[tuple[int, str, str, str]]] = {t: Counter() for t in adapters.BREACH_TYPES}
        self.breaches_read_to = 0  # the history seq `breaches` covers
        self.stages = labels.known_stages(self.book)
        self.windowed_at = -WINDOWED_REFRESH_S  # monotonic time of the last windowed refresh
        self.windowed_for: list[int] = []  # the partitions it covered

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
        overdue: dict[tuple[str, str, str], int] = defaultdict(int)
        for r in await adapters.overdue_counts(conn, partitions):
            overdue[(labels.procedure_label(r["procedure"]), self._stage(r["stage"]), r["kind"])] += r["n"]
        await self._refresh_breaches(conn, partitions)
        _set(metrics.COMPLAINTS_OPEN, opened)
        _set(metrics.DEADLINES_OVERDUE, overdue)
        if partitions != self.windowed_for or time.monotonic() - self.windowed_at >= WINDOWED_REFRESH_S:
            await self._refresh_windowed(conn, partitions, now)
            self.windowed_at, self.windowed_for = time.monotonic(), partitions

    async def _refresh_windowed(self, conn: asyncpg.Connection, partitions: list[int], now: datetime) -> None:
        """The report's timeliness and outcome figures over each window ending `now` (`figures`)."""
        since = figures.window_start(now, max(figures.WINDOW_DAYS.values()))
        self._set_timeliness(await adapters.deadlines_due_since(conn, partitions, since), now)
        self._set_outcomes(await adapters.received_since(conn, partitions, since), now)

    async def _refresh_breaches(self, conn: asyncpg.Connection, partitions: list[int]) -> None:
        """Add the breaches and withdrawals recorded since the last look, and export the owned partitions' totals
        (metrics module): both counters with the same series, so that breached - withdrawn is what stands."""
        self.breaches_read_to, rows = await adapters.breaches_after(conn, self.breaches_read_to)
        for r in rows:
            self.breaches[r["type"]][(r["partition"], labels.procedure_label(r["procedure"]),
                                      self._stage(r["stage"]), r["kind"])] += r["n"]
        breached, withdrawn = (self._owned(self.breaches[t], partitions) for t in adapters.BREACH_TYPES)
        metrics.DEADLINES_BREACHED.set(breached)
        metrics.BREACHES_WITHDRAWN.set(withdrawn)

    def _owned(self, counts: Counter[tuple[int, str, str, str]], partitions: list[int]
               ) -> dict[tuple[str, str, str, str], int]:
        """The counts of the owned partitions by (procedure, stage, kind, partition), 0 for every known deadline."""
        values = {(procedure, stage, kind, str(p)): 0 for p in partitions
                  for procedure, stage, kind in labels.known_deadlines(self.book)}
        for (p, procedure, stage, kind), n in counts.items():
            if p in partitions:
                values[(procedure, stage, kind, str(p))] = n
        return values

    def _set_timeliness(self, rows: list[asyncpg.Record], now: datetime) -> None:
        counted: Counter[tuple[str, ...]] = Counter()
        met: Counter[tuple[str, ...]] = Counter()
        for r in rows:
            done = figures.settled(r["due"], r["met_at"], r["breached"])
            for window in figures.windows_holding(done.at, now) if done else ():
                key = (self._stage(r["stage"]), r["kind"], window)
                counted[key] += 1
                met[key] += done.met if done else 0
        _set(metrics.TIMELINESS_COUNTED, counted)
        _set(metrics.TIMELINESS_MET, {k: met[k] for k in counted})
        _set(metrics.TIMELINESS_RATIO, {k: met[k] / n for k, n in counted.items() if n})

    def _set_outcomes(self, rows: list[asyncpg.Record], now: datetime) -> None:
        received: Counter[tuple[str, str, str]] = Counter()
        for r in rows:
            area = self._area(r["service_area"])
            for window in figures.windows_holding(r["received"], now):
                received[(figures.latest_outcome(r["outcome"], r["status"]), area, window)] += 1
        # every outcome of an area and window that has complaints: an upheld count of 0 is a figure too
        shown = {(outcome, area, window) for _, area, window in received for outcome in figures.LATEST_OUTCOMES}
        _set(metrics.COMPLAINTS_BY_OUTCOME, {k: received[k] for k in shown | set(received)})


def _set(gauge: Any, values: Mapping[Any, float]) -> None:
    gauge.clear()
    for names, value in values.items():
        gauge.labels(*names).set(value)
