"""Fuzz: malformed records of every kind through the running intake; each is accounted for, intake keeps going."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from schemas.registry import INBOUND_TOPICS, TOPIC_COMPLAINTS, TOPIC_DEADLETTER
from services.common.settings import Settings
from services.intake.worker import IntakeWorker
from tests.helpers import produce, read_topic, running, send_events, unique
from tests.integration.test_intake_flow import acknowledged, compliment, eventually, has_events, received


def designed_bad(marker: str) -> list[bytes]:
    """Records that must all be dead-lettered: each breaks one rule in its own way."""
    ok = received(f"{marker}-s")
    mutations: list[dict[str, Any]] = [
        {**ok, "time": "2026-02-30T09:00:00+00:00"}, {**ok, "time": "yesterday"}, {**ok, "time": "2026-03-02T09:00"},
        {**ok, "time": "0001-01-01T00:00:00+05:00"}, {**ok, "type": "complaint.reopened"}, {**ok, "type": 7},
        {**ok, "type": "deadline.breached"}, {**ok, "specversion": "0.3"}, {**ok, "id": ""}, {**ok, "id": None},
        {**ok, "subject": "two words"}, {**ok, "data": []}, {**ok, "data": {**ok["data"], "serious": "very"}},
        {**ok, "data": {**ok["data"], "service_area": "x" * 50_000}}, {**ok, "source": "s" * 10_000},
        {**ok, "data": {**ok["data"], "extra": 1}}, {**ok, "id": "a\u0000b"}, {**ok, "ext": [[[]]]},
        {k: v for k, v in ok.items() if k != "data"},
    ]
    raw = [json.dumps(m).encode() for m in mutations]
    raw += [b"", b"null", b"[]", b'"text"', b"{", b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000,
            b"{" + b'"a":{' * 5000 + b"}" * 5001, json.dumps(ok).encode()[:-5], b"x" * 300_000,
            json.dumps({**ok, "ext": "X"}).encode().replace(b'"X"', b'"\\ud800"')]
    return raw


def mutated(marker: str, rng: random.Random, n: int) -> list[bytes]:
    """Valid events with random bytes overwritten: some stay valid, most do not."""
    out = []
    for i in range(n):
        value = bytearray(json.dumps(compliment(f"{marker}-m{i}")).encode())
        for _ in range(rng.randint(1, 4)):
            value[rng.randrange(len(value))] = rng.randrange(256)
        out.append(bytes(value))
    return out


async def test_fuzzed_records_are_each_accepted_or_dead_lettered_and_intake_keeps_running(
        settings: Settings, pool: asyncpg.Pool) -> None:
    marker, rng = unique("fuzz"), random.Random(20261123)
    values = designed_bad(marker) + mutated(marker, rng, 250)
    keys = [f"{marker}-{i}".encode() for i in range(len(values))]
    designed = {k.decode() for k in keys[:len(designed_bad(marker))]}
    before = _intake_results()
    async with running(IntakeWorker, settings, out_of_order_grace_s=1.0) as runtime:
        for topic in INBOUND_TOPICS:  # every inbound topic, with records no upstream system should send
            await produce(settings, topic, values, keys)
        await eventually(_async(lambda: _intake_results() - before >= 4 * len(values)), 90)
        recorded = await _recorded(pool, values)
        # a bad record is lettered on all four topics; a valid one is accepted on its own and wrong_topic elsewhere
        expected = 4 * (len(values) - len(recorded)) + 3 * len(recorded)
        records = await read_topic(settings, TOPIC_DEADLETTER, lambda rs: _count(rs, marker) >= expected, 90)
        letters = [json.loads(r.value) for r in records if (r.key or b"").startswith(marker.encode())]
        case = f"{marker}-after"
        await send_events(settings, [received(case), acknowledged(case)])
        await eventually(lambda: has_events(pool, case, 2))
        assert runtime.loop is not None and runtime.loop.consuming
    lettered = {(letter["topic"], letter["key"]) for letter in letters}
    assert len(lettered) == len(letters) == expected  # each bad record once per topic, nothing else
    assert all(letter["reason"] and letter["detail"] for letter in letters)
    assert {(TOPIC_COMPLAINTS, k) for k in designed} <= lettered
    assert sum(letter["reason"] == "wrong_topic" for letter in letters) == 3 * len(recorded)
    assert recorded == await _recorded(pool, values)  # nothing accepted late, nothing twice


async def _recorded(pool: asyncpg.Pool, values: list[bytes]) -> set[bytes]:
    async with pool.acquire() as conn:
        return {bytes(r["raw"]) for r in await conn.fetch("SELECT raw FROM events WHERE raw = any($1::bytea[])",
                                                          values)}


def _intake_results() -> float:
    """Every record intake has settled (accepted, duplicate or rejected), from this process's counters."""
    total = 0.0
    for family in REGISTRY.collect():
        if family.name == "casefeedback_events":
            total += sum(s.value for s in family.samples
                         if s.name.endswith("_total") and s.labels.get("service") == "intake")
    return total


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()
    return run


def _count(records: list[Any], marker: str) -> int:
    return sum(1 for r in records if (r.key or b"").startswith(marker.encode()))
