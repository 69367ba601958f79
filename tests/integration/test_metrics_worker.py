"""The metrics worker on the real broker and database: figures equal a recompute from the history,
survive a restart without double counting, split across two workers without changing the sums,
and refuse uncountable history events as dead letters."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from schemas.registry import TOPIC_DEADLETTER
from services.common import eventstore
from services.common.settings import Settings
from services.metrics import domain as d
from services.metrics.collector import MetricsCollector
from services.metrics.worker import MetricsWorker
from tests.helpers import cloudevent, read_topic, running, unique, wait_for
from tests.unit import metrics_support as support

NOW = datetime.now(UTC).replace(microsecond=0)
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]
SUMMED = ("casefeedback_satisfaction_responses", "casefeedback_satisfaction_positive",
          "casefeedback_compliments_total", "casefeedback_complaint_outcomes_total",
          "casefeedback_complaints_received_total", "casefeedback_compliments_received",
          "casefeedback_survey_responses_total", "casefeedback_label_folded_total",
          "casefeedback_satisfaction_target_ratio", "casefeedback_satisfaction_benchmark_ratio")


def own_group() -> type[MetricsWorker]:
    """The metrics worker in a consumer group of this test's own: it follows the whole history from the start,
    and no group state of earlier tests (members that left) is in its way."""
    group = unique("casefeedback-metrics-test")
    return type("TestMetricsWorker", (MetricsWorker,), {"group": property(lambda self: group)})


def history(survey: str, n: int = 12) -> list[dict[str, Any]]:
    """A survey with targets and benchmark, answers over the year, compliments and complaint outcomes."""
    events = [cloudevent("survey.defined", survey, (NOW - timedelta(days=400)).isoformat(), {
        "title": "Service user survey", "questions": [
            {"question_id": "q1", "text": "Overall satisfied?", "scale": "likert5", "positive": ["4", "5"],
             "target": 0.85, "benchmark": {"label": "Scotland", "value": 0.84}},
            {"question_id": "q2", "text": "Treated with respect?", "scale": "yes_no", "positive": ["yes"],
             "target": 0.9}]})]
    for i in range(n):
        when = (NOW - timedelta(days=i * 31)).isoformat()
        events.append(cloudevent("survey.response.submitted", unique("resp"), when, {
            "survey_id": survey, "respondent_type": ["service_user", "carer", "volunteer"][i % 3],
            "answers": {"q1": str(1 + i % 5), "q2": i % 4 != 0}}))
        events.append(cloudevent("compliment.received", unique("cmp"), when,
                                 {"service_area": ["housing", "general", "a ward"][i % 3], "channel": "web",
                                  "about": "staff"}))
        events.append(cloudevent("complaint.responded", unique("case"), when,
                                 {"stage": "stage1", "outcome": ["upheld", "not_upheld"][i % 2]}))
    return events


async def append(pool: asyncpg.Pool, events: list[dict[str, Any]]) -> None:
    """Accept events into the history as intake would; the worker's relay publishes them."""
    async with pool.acquire() as conn, conn.transaction():
        await eventstore.append(conn, [eventstore.NewEvent(e, json.dumps(e).encode()) for e in events])


def scrape(collector: MetricsCollector) -> Scrape:
    """One collector's exposition, as Prometheus would parse it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    out: Scrape = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def summed(scrapes: list[Scrape], names: tuple[str, ...] = SUMMED) -> Scrape:
    """What `sum by (all labels)` across workers gives, for the additive metrics."""
    total: Scrape = {}
    for one in scrapes:
        for (name, labels), value in one.items():
            if name in names:
                total[(name, labels)] = total.get((name, labels), 0) + value
    return {k: v for k, v in total.items() if v or "window" not in dict(k[1])}


async def recomputed(pool: asyncpg.Pool, sets: d.LabelSets) -> Scrape:
    """Every figure recomputed from the whole history for the same moment."""
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT seq, body FROM events ORDER BY seq")
    snap = support.replay(((0, r["seq"], json.loads(r["body"])) for r in rows), sets)
    return scrape(MetricsCollector(snap, lambda: NOW))


def workers() -> list[MetricsWorker]:
    for w in MetricsWorker.live:
        w.clock = lambda: NOW
    return list(MetricsWorker.live)


async def until_equal(pool: asyncpg.Pool, timeout_s: float = 45) -> Scrape:
    """Poll until the live workers' summed figures equal the recompute; return them."""
    state: dict[str, Scrape] = {}

    async def check() -> bool:
        ws = workers()
        state["live"] = summed([scrape(w.collector) for w in ws])
        state["expected"] = summed([await recomputed(pool, ws[0].sets)])
        return state["live"] == state["expected"]

    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            diff = {k: (state["live"].get(k), v) for k, v in state["expected"].items() if state["live"].get(k) != v}
            raise AssertionError(f"live figures differ from the recompute: {dict(list(diff.items())[:10])}")
        await asyncio.sleep(0.2)
    return state["live"]


def value(figures: Scrape, name: str, **labels: str) -> float:
    return figures.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_figures_equal_the_recompute_and_survive_a_restart(settings: Settings, pool: asyncpg.Pool) -> None:
    survey, worker = unique("survey"), own_group()
    async with running(worker, settings):
        await append(pool, history(survey))
        before = await until_equal(pool)
    sat = ("casefeedback_satisfaction_positive", "casefeedback_satisfaction_responses")
    q1 = {"survey": survey, "question": "q1", "respondent_type": "service_user", "window": "365d"}
    assert [value(before, n, **q1) for n in sat] == [2.0, 4.0]  # answers 1, 4, 2, 5 within the year
    assert value(before, "casefeedback_satisfaction_target_ratio", survey=survey, question="q1") == 0.85
    async with running(worker, settings):
        after_restart = summed([scrape(w.collector) for w in workers()])
        assert after_restart == before, "counters and windows must be restored, not reset or doubled"
        await append(pool, [cloudevent("compliment.received", unique("cmp"), NOW.isoformat(),
                                       {"service_area": "housing", "channel": "web", "about": "service"})])
        after = await until_equal(pool)
        for w in MetricsWorker.live:
            w.clock = lambda: NOW + timedelta(days=400)  # no new events, only time passing
        later = summed([scrape(w.collector) for w in MetricsWorker.live])
    assert value(later, "casefeedback_satisfaction_responses", **q1) == 0, "the year's answers slid out of the window"
    assert later[("casefeedback_compliments_total", (("service_area", "housing"),))] == after[
        ("casefeedback_compliments_total", (("service_area", "housing"),))], "all-time counters do not slide"
    area = (("service_area", "housing"),)
    assert after[("casefeedback_compliments_total", area)] == before[("casefeedback_compliments_total", area)] + 1


async def test_two_workers_split_the_partitions_and_sum_to_the_single_worker_figures(
        settings: Settings, pool: asyncpg.Pool) -> None:
    survey, worker = unique("survey"), own_group()
    async with AsyncExitStack() as stack:
        for _ in range(2):
            await stack.enter_async_context(running(worker, settings))
        await wait_for(lambda: all(w.owned_partitions() for w in workers()) and len(workers()) == 2, 30)
        owned = [w.owned_partitions() for w in workers()]
        assert not owned[0] & owned[1] and len(owned[0] | owned[1]) == settings.kafka.partitions
        await append(pool, history(survey, n=18))
        split = await until_equal(pool)
        per_worker = [scrape(w.collector) for w in workers()]
    positive = [value(s, "casefeedback_satisfaction_positive", survey=survey, question="q2",
                      respondent_type="carer", window="365d") for s in per_worker]
    assert sum(positive) == value(split, "casefeedback_satisfaction_positive", survey=survey, question="q2",
                                  respondent_type="carer", window="365d") > 0
    answered = [sum(v for (n, labels), v in s.items() if n == "casefeedback_satisfaction_responses"
                    and ("survey", survey) in labels) for s in per_worker]
    assert all(a > 0 for a in answered), f"18 responses over 6 partitions reach both owners: {answered}"
    targets = [value(s, "casefeedback_satisfaction_target_ratio", survey=survey, question="q1") for s in per_worker]
    assert sorted(targets) == [0.0, 0.85], "a target is exported once, by the owner of the definition's partition"


async def test_an_uncountable_history_event_becomes_a_dead_letter(settings: Settings, pool: asyncpg.Pool) -> None:
    subject = unique("resp")
    bad = cloudevent("survey.response.submitted", subject, NOW.isoformat(),
                     {"survey_id": "s", "respondent_type": "carer", "answers": "all good"})
    async with running(own_group(), settings) as runtime:
        await append(pool, [bad])
        letters = await read_topic(settings, TOPIC_DEADLETTER,
                                   lambda rs: any(r.key == subject.encode() for r in rs))
        assert runtime.loop is not None and runtime.loop.consuming
    letter = next(json.loads(r.value) for r in letters if r.key == subject.encode())
    assert letter["reason"] == "internal" and "answers (object)" in letter["detail"]  # it bypassed intake


async def test_any_failure_counting_one_event_dead_letters_it_and_the_rest_flows_on(
        settings: Settings, pool: asyncpg.Pool) -> None:
    subject = unique("survey")
    overflowing = cloudevent("survey.defined", subject, NOW.isoformat(), {"title": "t", "questions": [
        {"question_id": "q1", "text": "x", "scale": "likert5", "positive": ["5"],
         "benchmark": {"label": "Scotland", "value": 10**400}}]})  # no float holds it
    after = cloudevent("compliment.received", unique("cmp"), NOW.isoformat(),
                       {"service_area": "housing", "channel": "web", "about": "staff"})
    async with running(own_group(), settings) as runtime:
        await append(pool, [overflowing, after])
        letters = await read_topic(settings, TOPIC_DEADLETTER,
                                   lambda rs: any(r.key == subject.encode() for r in rs))
        figures = await until_equal(pool)
        assert runtime.loop is not None and runtime.loop.consuming
    letter = next(json.loads(r.value) for r in letters if r.key == subject.encode())
    assert letter["reason"] == "internal" and "a target or benchmark must be a number" in letter["detail"]
    assert figures[("casefeedback_compliments_total", (("service_area", "housing"),))] >= 1


async def test_compaction_folds_old_days_without_changing_any_figure(settings: Settings, pool: asyncpg.Pool) -> None:
    old = [cloudevent("compliment.received", unique("cmp"), (NOW - timedelta(days=500 + i)).isoformat(),
                      {"service_area": "general", "channel": "web", "about": "staff"}) for i in range(5)]
    worker = own_group()
    async with running(worker, settings):
        await append(pool, old + history(unique("survey")))
        before = await until_equal(pool)
        live = workers()[0]
        await live.compact()
        assert summed([scrape(live.collector)]) == before
        async with pool.acquire() as conn:
            oldest = await conn.fetchval("SELECT min(day) FROM metrics_buckets WHERE grp = $1 AND day > 0", live.group)
        assert oldest >= d.compact_cutoff(d.today_of(NOW))
    async with running(worker, settings):  # a restart loads the compacted rows: same figures
        assert summed([scrape(w.collector) for w in workers()]) == before
