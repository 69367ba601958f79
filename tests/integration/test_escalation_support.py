"""Helpers (no tests) shared by the escalation and learning integration tests: accept events, wait on the history."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from services.common import eventstore
from tests.helpers import cloudevent, wait_for


async def accept(pool: asyncpg.Pool, events: list[dict[str, Any]]) -> None:
    """Accept inbound events into the history as intake would; the worker's relay publishes them."""
    async with pool.acquire() as conn, conn.transaction():
        await eventstore.append(conn, [eventstore.NewEvent(e, json.dumps(e).encode()) for e in events])


async def derived(pool: asyncpg.Pool, subject: str, source: str) -> list[dict[str, Any]]:
    """The events `source` derived for `subject`, in history order."""
    async with pool.acquire() as conn:
        history = await eventstore.subject_history(conn, subject)
    return [e.body for e in history if e.body["source"] == source]


async def wait_derived(pool: asyncpg.Pool, subject: str, source: str, count: int,
                       timeout_s: float = 30) -> list[dict[str, Any]]:
    """Wait until `source` derived at least `count` events for `subject`; return them."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        found[:] = await derived(pool, subject, source)
        return len(found) >= count

    await wait_async(enough, timeout_s)
    return found


async def wait_async(predicate: Any, timeout_s: float) -> None:
    """Poll an async predicate."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.1)


def received(subject: str, time: str, stage: str = "stage1", serious: bool = False, procedure: str | None = None,
             area: str = "community_care") -> dict[str, Any]:
    """A complaint.received event."""
    data: dict[str, Any] = {"service_area": area, "channel": "phone", "stage": stage, "serious": serious,
                            "themes": ["staff_attitude"]}
    if procedure:
        data["procedure"] = procedure
    return cloudevent("complaint.received", subject, time, data)


def brief(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(type, stage, kind, due date, late) of derived deadline events."""
    return [(e["type"], e["data"].get("stage"), e["data"].get("kind"), e["data"]["due"][:10], e["data"].get("late"))
            for e in events]


__all__ = ["accept", "derived", "wait_derived", "wait_async", "received", "brief", "cloudevent", "wait_for"]
