"""Intake's consume, decide, emit loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.structs import ConsumerRecord

from schemas.registry import INBOUND_TOPICS, Rejection, validate_inbound
from services.common import eventstore
from services.common.deadletter import deadletter_value, send_deadletters
from services.common.metrics import EVENTS
from services.common.worker import Worker


def _letter(record: ConsumerRecord, reason: str, detail: str) -> dict[str, Any]:
    return deadletter_value(reason, detail, record.topic, record.partition, record.offset, record.key, record.value)


class IntakeWorker(Worker):
    """Consumes the inbound topics and appends valid events to the history."""

    name = "intake"
    topics = INBOUND_TOPICS

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        valid: list[tuple[ConsumerRecord, eventstore.NewEvent]] = []
        letters = []
        for record in records:
            try:
                event = validate_inbound(record.value)
            except Rejection as rejection:
                letters.append(_letter(record, rejection.reason, rejection.detail))
                EVENTS.labels(self.name, "unknown", "rejected").inc()
                continue
            valid.append((record, eventstore.NewEvent(event.normalised(), record.value)))
        async with self.pool.acquire() as conn, conn.transaction():
            result = await eventstore.append(conn, [e for _, e in valid])
        by_id = {e.id: r for r, e in valid}
        for conflict in result.conflicts:
            letters.append(_letter(by_id[conflict.id], "invalid_data",
                                   f"conflict: id {conflict.id!r} was already accepted with a different body"))
        await send_deadletters(self.producer, letters)
        for stored in result.stored:
            EVENTS.labels(self.name, stored.type, "accepted").inc()
        for dup in result.duplicates:
            EVENTS.labels(self.name, str(dup.body["type"]), "duplicate").inc()
