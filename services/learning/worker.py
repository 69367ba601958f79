"""Learning's worker: opens and tracks the learning stage after each closed complaint.

It shares escalation's mechanism (`services.deadlines`): the same engine applies the history,
dead-letters what the domain refuses (as escalation does), and fires the learning deadlines (warning,
then `learning.stage.overdue`) exactly once, from event time, with the same live/replay rules.
Learning events that arrive while no stage is open are held in the case's state; once the grace
time (`CASEFEEDBACK_OUT_OF_ORDER_GRACE_S`) has passed by the wall clock they are dead-lettered as
`out_of_order`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from schemas.registry import TOPIC_EVENTS
from services.common.deadletter import deadletter_value, send_deadletters
from services.common.worker import Background, HistoryRecord
from services.deadlines.engine import Applied, Tracker
from services.deadlines.worker import TrackingWorker, _sleep
from services.learning import adapters, domain, metrics
from services.learning.domain import CaseLearning
from services.learning.projection import PROJECTION

HOLD_TRIGGERS = ("complaint.received", "complaint.closed", *domain.HELD_TYPES)


class LearningWorker(TrackingWorker):
    """Opens and tracks the learning stage after each closed complaint."""

    name = "learning"

    def make_tracker(self) -> Tracker[CaseLearning]:
        return PROJECTION.tracker(self.book)

    async def after_apply(self, conn: asyncpg.Connection, events: Sequence[HistoryRecord], applied: Applied) -> None:
        held = sorted({str(e.body["subject"]) for e in events if e.type in HOLD_TRIGGERS})
        if held:
            grace = timedelta(seconds=self.settings.out_of_order_grace_s)
            await adapters.mark_held(conn, held, datetime.now(UTC) + grace)
        self._count(events, applied.states)

    def _area(self, area: str) -> str:
        return self.settings.labels.service_area(area)

    def _count(self, events: Sequence[HistoryRecord], states: dict[str, Any]) -> None:
        for event in events:
            state = states.get(str(event.body["subject"]))
            if event.type == "complaint.received" and state is not None:
                area = self._area(str(event.body["data"]["service_area"]))
                for theme in self.settings.labels.themes_of(event.body["data"].get("themes")):
                    metrics.THEMES_TOTAL.labels(area, theme).inc()
            elif event.type.startswith("learning.") and state is not None:
                self._count_learning(event, state)

    def _count_learning(self, event: HistoryRecord, state: CaseLearning) -> None:
        stage, data = (state.stages[-1] if state.stages else None), event.body["data"]
        action = next((a for a in stage.actions if a.action_id == data.get("action_id")), None) if stage else None
        area = self._area(state.service_area)
        if event.type == "learning.action.added" and action is not None:
            metrics.ACTIONS.labels(action.level, "opened", area).inc()
        elif event.type == "learning.action.completed" and action is not None and action.completed:
            metrics.ACTIONS.labels(action.level, "completed", area).inc()
        elif event.type == "learning.plan.submitted" and stage is not None and stage.submitted is not None:
            complete, late = stage.incomplete_actions == 0, bool(stage.deadline.late)
            metrics.PLANS.labels(str(complete).lower(), str(late).lower()).inc()

    def background(self) -> list[Background]:
        return [*super().background(), self._expiry_loop]

    async def expire_once(self, now: datetime | None = None) -> int:
        """Dead-letter held events whose grace has passed; return how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            cases = await adapters.expired_holds(conn, sorted(self.owned), now or datetime.now(UTC))
            letters = []
            for subject, partition, state in cases:
                kept, dropped = domain.drop_held(state)
                letters += [_out_of_order(body, partition) for body in dropped]
                await adapters.save_dropped(conn, subject, kept)
            if letters:
                await send_deadletters(self.producer, letters)
        return len(letters)

    async def _expiry_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncpg.PostgresError, OSError):  # retried on the next round
                await self.expire_once()
            await _sleep(stop, max(0.2, self.settings.tick_interval_s))

    async def refresh_gauges(self, conn: asyncpg.Connection, partitions: list[int], now: datetime) -> None:
        opened, overdue = await adapters.stage_counts(conn, partitions)
        metrics.STAGES_OPEN.set(opened)
        metrics.STAGES_OVERDUE.set(overdue)


def _out_of_order(body: dict[str, Any], partition: int) -> dict[str, Any]:
    detail = f"{body.get('type')} for a case with no open learning stage after the grace time"
    return deadletter_value("internal", detail, TOPIC_EVENTS, partition, None,
                            str(body.get("subject", "")).encode(), json.dumps(body).encode())
