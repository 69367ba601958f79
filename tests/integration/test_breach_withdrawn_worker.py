"""Contract 11.2 on the real broker and database: the escalation worker's tick breaches a deadline whose in-time
response is recorded only later; the response withdraws the breach (`deadline.breach_withdrawn` in the history
and on `casefeedback.alerts`), counted by `casefeedback_deadlines_breach_withdrawn_total` (exported at 0 from
start-up, read from the history like the breach counter) and met in time by the timeliness gauges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from schemas.registry import TOPIC_ALERTS
from services.common.runtime import Runtime
from services.common.settings import Settings
from services.escalation.domain import SOURCE
from services.escalation.worker import EscalationWorker
from tests.helpers import bodies, read_topic, running, unique, wait_for
from tests.integration.test_escalation_support import accept, cloudevent, received, wait_derived

SERIES = {"procedure": "england-children-2006", "stage": "stage1", "kind": "respond"}


@pytest.fixture(scope="module")
async def worker(settings: Settings) -> AsyncIterator[Runtime]:
    async with running(EscalationWorker, settings, tick_interval_s=0.1) as runtime:
        yield runtime


def total(name: str, **labels: str) -> float:
    """The sum over partitions of a history-read counter's series with these labels."""
    return sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == name
               and labels.items() <= s.labels.items())


def series(name: str) -> set[tuple[str, ...]]:
    return {(s.labels["procedure"], s.labels["stage"], s.labels["kind"], s.labels["partition"])
            for m in REGISTRY.collect() for s in m.samples if s.name == name}


async def test_the_withdrawal_counter_starts_at_0_with_the_breach_counters_series(worker: Runtime) -> None:
    await wait_for(lambda: bool(series("casefeedback_deadlines_breach_withdrawn_total")), 15)
    assert series("casefeedback_deadlines_breach_withdrawn_total") == series("casefeedback_deadlines_breached_total")


async def test_a_breach_then_an_in_time_response_recorded_later_withdraws_it(
        worker: Runtime, pool: asyncpg.Pool, settings: Settings) -> None:
    await wait_for(lambda: bool(series("casefeedback_deadlines_breach_withdrawn_total")), 15)
    withdrawn_before = total("casefeedback_deadlines_breach_withdrawn_total", **SERIES)
    breached_before = total("casefeedback_deadlines_breached_total", **SERIES)
    year = {"stage": "stage1", "kind": "respond", "window": "365d"}
    met_before = REGISTRY.get_sample_value("casefeedback_timeliness_met", year) or 0
    case, at = unique("withdrawn"), (datetime.now(UTC) - timedelta(days=40)).replace(microsecond=0)
    await accept(pool, [received(case, at.isoformat(), procedure="england-children-2006")])
    found = await wait_derived(pool, case, SOURCE, 3)
    breach = found[-1]
    assert breach["type"] == "deadline.breached"  # by the tick, the response not yet recorded
    await accept(pool, [cloudevent("complaint.responded", case, (at + timedelta(days=2)).isoformat(),
                                   {"stage": "stage1", "outcome": "resolved"})])
    found = await wait_derived(pool, case, SOURCE, 5)
    met, withdrawn = found[3:]
    assert met["type"] == "deadline.met" and met["data"]["late"] is False
    assert withdrawn["type"] == "deadline.breach_withdrawn"
    assert withdrawn["data"]["breached_id"] == breach["id"]
    assert withdrawn["data"]["met_at"] == (at + timedelta(days=2)).isoformat()
    alerts = await read_topic(settings, TOPIC_ALERTS, lambda rs: any(
        b["id"] == withdrawn["id"] for b in bodies([r for r in rs if r.key == case.encode()])))
    assert withdrawn["id"] in {b["id"] for b in bodies(alerts)}
    await wait_for(lambda: total("casefeedback_deadlines_breach_withdrawn_total", **SERIES) == withdrawn_before + 1, 15)
    assert total("casefeedback_deadlines_breached_total", **SERIES) == breached_before + 1  # the record stands
    # timeliness counts it met, in the windows holding the act
    await wait_for(lambda: (REGISTRY.get_sample_value("casefeedback_timeliness_met", year) or 0) == met_before + 1, 15)
