"""Escalation's worker: keeps every complaint's stage and deadlines from the history.

Live and replay stay equal because (1) every event is applied after firing the case's timers due
by its event time, (2) the wall-clock tick fires a case's timers only once every history event
of that case has been applied (`store.pending_subjects`), and (3) replay treats the recorded
`deadline.warning`/`deadline.breached` events as the moments they fired. A warning or breach
the tick raised before a late-arriving act (e.g. history from 2011 entered in 2026) is part of
the record; the act is then met with `late` judged from event times alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from services.deadlines import labels
from services.deadlines.engine import Applied, Tracker
from services.deadlines.worker import TrackingWorker
from services.escalation import adapters, metrics
from services.escalation.domain import CaseState


class EscalationWorker(TrackingWorker):
    """Keeps every complaint's deadlines from the history."""

    name = "escalation"

    def tracker(self) -> Tracker[CaseState]:
        if not hasattr(self, "_tracker"):
            self._tracker = adapters.tracker(self.book)
        return self._tracker

    def observe(self, applied: Applied) -> None:
        for event in applied.stored:
            if event.type == "deadline.breached":
                data = event.body["data"]
                metrics.DEADLINES_BREACHED.labels(self._stage(data["stage"]), data["kind"]).inc()

    def _stage(self, stage: str) -> str:
        return labels.fold(stage, labels.known_stages(self.book))

    def _area(self, area: str) -> str:
        return labels.fold(area, self.settings.service_areas or labels.DEFAULT_SERVICE_AREAS)

    async def refresh_gauges(self, conn: asyncpg.Connection, partitions: list[int], now: datetime) -> None:
        opened: dict[tuple[str, str], int] = defaultdict(int)
        for r in await adapters.open_counts(conn, partitions):
            opened[(self._stage(r["stage"]), self._area(r["service_area"]))] += r["n"]
        overdue: dict[tuple[str, str], int] = defaultdict(int)
        for r in await adapters.overdue_counts(conn, partitions):
            overdue[(self._stage(r["stage"]), r["kind"])] += r["n"]
        timely = await adapters.timeliness(conn, partitions, now)
        _set(metrics.COMPLAINTS_OPEN, opened)
        _set(metrics.DEADLINES_OVERDUE, overdue)
        self._set_timeliness(timely)

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
