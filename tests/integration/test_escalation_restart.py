"""Escalation across a kill -9, a restart, and two workers splitting the partitions: each deadline alerted once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncpg

from schemas.registry import TOPIC_ALERTS
from services.common.settings import Settings
from services.escalation.domain import SOURCE
from services.escalation.worker import EscalationWorker
from tests.helpers import bodies, read_topic, running, unique, wait_for
from tests.integration.test_escalation_support import accept, brief, cloudevent, derived, received, wait_derived

ROOT = Path(__file__).resolve().parents[2]


def _spawn(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers or "",
           "DATABASE_URL": settings.require_database(), "CASEFEEDBACK_TICK_INTERVAL_S": "0.1",
           "CASEFEEDBACK_HOME": str(log.parent)}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "services.cli", "run", "escalation"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def test_killed_mid_case_and_restarted_meets_and_breaches_exactly_once(
        settings: Settings, pool: asyncpg.Pool, tmp_path: Path) -> None:
    case, other = unique("kill"), unique("kill")
    process = _spawn(settings, tmp_path / "escalation.log")
    try:
        # Received and acknowledged are recorded together: the dates are long past by the wall clock, so
        # a tick between the two would (rightly) warn of the acknowledgement before the history held it.
        await accept(pool, [received(case, "2026-03-02T09:15:00+00:00", serious=True),
                            cloudevent("complaint.acknowledged", case, "2026-03-04T09:00:00+00:00",
                                       {"stage": "stage2"})])
        await wait_derived(pool, case, SOURCE, 3, timeout_s=60)  # scheduled ack and respond, ack met
        await accept(pool, [received(other, "2026-03-02T09:15:00+00:00")])
        process.send_signal(signal.SIGKILL)  # maybe mid-batch: nothing after its last commit counts
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    await accept(pool, [cloudevent("complaint.responded", case, "2026-04-20T09:00:00+00:00",
                                   {"stage": "stage2", "outcome": "upheld"})])
    async with running(EscalationWorker, settings, tick_interval_s=0.1):
        events = await wait_derived(pool, case, SOURCE, 6, timeout_s=60)
        await wait_derived(pool, other, SOURCE, 3, timeout_s=30)
        await asyncio.sleep(1.0)
    events = await derived(pool, case, SOURCE)
    assert brief(events) == [
        ("deadline.scheduled", "stage2", "acknowledge", "2026-03-05", None),
        ("deadline.scheduled", "stage2", "respond", "2026-03-30", None),
        ("deadline.met", "stage2", "acknowledge", "2026-03-05", False),
        ("deadline.warning", "stage2", "respond", "2026-03-30", None),
        ("deadline.breached", "stage2", "respond", "2026-03-30", None),
        ("deadline.met", "stage2", "respond", "2026-03-30", True)]
    assert [e["type"] for e in await derived(pool, other, SOURCE)] == [
        "deadline.scheduled", "deadline.warning", "deadline.breached"]


async def test_two_workers_in_one_group_alert_each_deadline_exactly_once(
        settings: Settings, pool: asyncpg.Pool) -> None:
    cases = [unique("pair") for _ in range(120)]
    async with running(EscalationWorker, settings, tick_interval_s=0.1) as first:
        async with running(EscalationWorker, settings, tick_interval_s=0.1) as second:
            await wait_for(lambda: _owned(first) + _owned(second) == settings.kafka.partitions
                           and _owned(first) > 0 and _owned(second) > 0, 30)
            await accept(pool, [received(c, "2026-03-02T09:15:00+00:00") for c in cases[:60]])
            await wait_derived(pool, cases[59], SOURCE, 1, timeout_s=30)
        # The second worker left mid-stream (a rebalance); the first takes every partition.
        await accept(pool, [received(c, "2026-03-02T09:15:00+00:00") for c in cases[60:]])
        for case in cases:
            await wait_derived(pool, case, SOURCE, 3, timeout_s=60)
        await asyncio.sleep(1.0)
    wanted = {c.encode() for c in cases}
    alerts = await read_topic(settings, TOPIC_ALERTS,
                              lambda rs: sum(r.key in wanted for r in rs) >= 2 * len(cases))
    seen = Counter((b["subject"], b["type"]) for b in bodies(alerts) if b["subject"] in set(cases))
    assert len(seen) == 2 * len(cases) and set(seen.values()) == {1}
    for case in cases:
        assert [e["type"] for e in await derived(pool, case, SOURCE)] == [
            "deadline.scheduled", "deadline.warning", "deadline.breached"]


def _owned(runtime: object) -> int:
    loop = getattr(runtime, "loop", None)
    return len(loop.assigned) if loop is not None else 0


async def test_a_changed_procedure_file_does_not_move_open_cases_deadlines(
        settings: Settings, pool: asyncpg.Pool, tmp_path: Path) -> None:
    import yaml

    from services.deadlines.procedure_files import BUILT_IN

    old_case, new_case = unique("proc"), unique("proc")
    async with running(EscalationWorker, settings, tick_interval_s=0.1):
        await accept(pool, [received(old_case, "2026-03-02T09:15:00+00:00")])
        await wait_derived(pool, old_case, SOURCE, 1, timeout_s=30)
    raw = yaml.safe_load((BUILT_IN / "spso-mchp.yaml").read_text())
    raw["stages"][1]["respond"] = 30  # the operator's new version lengthens stage 2
    (tmp_path / "spso-mchp.yaml").write_text(yaml.safe_dump(raw))
    async with running(EscalationWorker, settings, tick_interval_s=0.1, procedures_dir=tmp_path):
        await accept(pool, [cloudevent("complaint.escalated", old_case, "2026-03-13T09:00:00+00:00",
                                       {"to_stage": "stage2"}),
                            received(new_case, "2026-03-13T09:00:00+00:00", serious=True)])
        old = await wait_derived(pool, old_case, SOURCE, 6, timeout_s=30)
        new = await wait_derived(pool, new_case, SOURCE, 2, timeout_s=30)
    respond = [e for e in old if e["type"] == "deadline.scheduled" and e["data"]["stage"] == "stage2"][-1]
    assert respond["data"]["due"][:10] == "2026-04-13"  # 20 working days: the version it was received under
    assert new[1]["data"]["due"][:10] == "2026-04-27"  # 30 working days under the new file


def _breached(procedure: str, stage: str, kind: str) -> dict[str, float]:
    """casefeedback_deadlines_breached_total for (procedure, stage, kind), by partition, as this process exports it."""
    from prometheus_client import REGISTRY

    return {s.labels.get("partition", ""): s.value for m in REGISTRY.collect() for s in m.samples
            if s.name == "casefeedback_deadlines_breached_total"
            and (s.labels["procedure"], s.labels["stage"], s.labels["kind"]) == (procedure, stage, kind)}


async def test_the_breach_counter_survives_a_restart_because_it_is_read_from_the_history(
        settings: Settings, pool: asyncpg.Pool) -> None:
    # The attack: the counter lived in the worker's memory, so a restart sent it back to zero and
    # increase() lost (or, on a decrease it took for a reset, invented) breaches.
    from services.escalation import metrics

    case = unique("count")
    async with running(EscalationWorker, settings, tick_interval_s=0.1):
        await accept(pool, [received(case, "2026-03-02T09:15:00+00:00")])
        await wait_derived(pool, case, SOURCE, 3, timeout_s=30)  # scheduled, warned, breached
        await wait_for(lambda: sum(_breached("spso-mchp", "stage1", "respond").values()) >= 1, 15)
        before = _breached("spso-mchp", "stage1", "respond")
    metrics.DEADLINES_BREACHED.clear()  # what a new process starts with
    assert sum(_breached("spso-mchp", "stage1", "respond").values()) == 0
    async with running(EscalationWorker, settings, tick_interval_s=0.1):
        # At least what was counted before, per partition (other tests' cases may breach meanwhile).
        await wait_for(lambda: all(_breached("spso-mchp", "stage1", "respond").get(p, 0) >= n
                                   for p, n in before.items()), 15)
        # Every stage and kind of each configured procedure is exported from start-up, at 0 if need be.
        assert set(_breached("dundee-2011", "committee", "respond")) == set(before)
        assert _breached("dundee-2011", "committee", "acknowledge") == {}
