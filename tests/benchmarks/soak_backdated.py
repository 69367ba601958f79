"""Soak: 20,000 backdated events at a few thousand a second, interleaved as upstream systems send them.

What it proves (each run on a fresh `casefeedback up`): no breach is raised for a deadline that was
met in time, and replay derives exactly what the live services derived. Each complaint's `received`
and its answer are far apart in the stream (about `--window` records, around a second at the
default rate), among other cases, compliments and survey responses; event times are months in the
past, so every due instant has passed by the wall clock and the deadline tick is busy the whole time.

Breaches of deadlines met in time are counted two ways: `lies`, raised after the history already
held the act that met the deadline (the tick racing intake's commit), and `before_the_act_was_recorded`,
raised while the act was still on its way (the tick waits `CASEFEEDBACK_OUT_OF_ORDER_GRACE_S` after a
case's latest recorded event for this). Either fails the run, as does a replay that does not exit 0.

Then a nightly-batch sender (contract 11.2), as many councils' CRMs export once a night: a day's complaints
are sent, the tick breaches their deadlines (every due instant has passed by the wall clock), and only
then does the night's export deliver the day's responses, most of them dated in time. Each in-time
response withdraws its breach (`deadline.breach_withdrawn`); the run fails unless the net breaches of
deadlines met in time are 0 (breaches of late responses stand) and replay, run after both, exits 0.

Run: python -m tests.benchmarks.soak_backdated [--events 20000] [--runs 3] [--rate 2500 | --rate 0] [--grace 30]
     [--nightly 500] [--quick]   (--quick: one run of 600 events, 100 stories open at once, 60 nightly cases,
     a 2 s grace, to prove it runs)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.registry import TOPIC_ALERTS, inbound_topic
from services.common.settings import KafkaSettings
from tests.e2e.conftest import UpProcess, start_up, stop_up

START = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
# Defaults of the options, for the full soak and for the quick run that proves it still works.
FULL = {"events": 20_000, "runs": 3, "window": 2000, "grace": 30.0, "nightly": 500}
QUICK = {"events": 600, "runs": 1, "window": 100, "grace": 2.0, "nightly": 60}
NIGHTLY_SOURCE = "soak/nightly-crm"
NIGHT_DAY = datetime(2026, 9, 1, 9, 0, tzinfo=timezone.utc)  # a Tuesday; every due instant long passed
AREAS = ["housing", "community_care", "childrens_services", "roads", "waste"]


def _event(type_: str, subject: str, at: datetime, data: dict[str, Any], source: str = "soak/crm") -> dict[str, Any]:
    return {"specversion": "1.0", "id": uuid.uuid4().hex, "source": source, "type": type_, "subject": subject,
            "time": at.isoformat(), "datacontenttype": "application/json", "data": data}


def _complaint(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """One stage-1 complaint: answered in time (most), late, or never."""
    case, at = f"soak-case-{n}", START + timedelta(hours=rng.randrange(0, 24 * 90))
    area = rng.choice(AREAS)
    story = [_event("complaint.received", case, at, {"service_area": area, "channel": "web", "stage": "stage1",
                                                     "serious": False})]
    fate = rng.random()
    if fate < 0.8:
        story.append(_event("complaint.responded", case, at + timedelta(days=rng.choice([1, 2, 3])),
                            {"stage": "stage1", "outcome": rng.choice(["upheld", "not_upheld", "resolved"])}))
    elif fate < 0.9:
        story.append(_event("complaint.responded", case, at + timedelta(days=12),
                            {"stage": "stage1", "outcome": "not_upheld"}))
    if len(story) == 2 and rng.random() < 0.5:
        story.append(_event("complaint.closed", case, datetime.fromisoformat(story[1]["time"]) + timedelta(hours=1),
                            {}))
    return story


def _others(rng: random.Random, n: int, survey: str) -> dict[str, Any]:
    at = START + timedelta(hours=rng.randrange(0, 24 * 90))
    if n % 2:
        return _event("compliment.received", f"soak-compliment-{n}", at,
                      {"service_area": rng.choice(AREAS), "channel": "email", "about": "staff"})
    answers = {"q1": rng.choice(["yes", "no"])}
    return _event("survey.response.submitted", f"soak-response-{n}", at,
                  {"survey_id": survey, "respondent_type": "service_user", "answers": answers})


def nightly_batches(cases: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A day's complaints, and the night's export of their responses: 9 in 10 dated in time (the same day or
    the next), the rest after the due instant (their breaches stand)."""
    rng = random.Random(seed * 7919)
    day: list[dict[str, Any]] = []
    night: list[dict[str, Any]] = []
    for n in range(cases):
        case, at = f"night-{seed}-{n}", NIGHT_DAY + timedelta(minutes=rng.randrange(0, 8 * 60))
        day.append(_event("complaint.received", case, at, {"service_area": rng.choice(AREAS), "channel": "phone",
                                                           "stage": "stage1", "serious": False}, NIGHTLY_SOURCE))
        late = rng.random() < 0.1
        answered = at + (timedelta(days=14) if late else timedelta(hours=rng.randrange(2, 30)))
        night.append(_event("complaint.responded", case, answered, {"stage": "stage1", "outcome": "upheld"},
                            NIGHTLY_SOURCE))
    return day, night


def interleaved(total: int, seed: int, window: int = 300) -> Iterator[dict[str, Any]]:
    """About `total` events: stories spread far apart in the stream, each case's own order kept."""
    rng = random.Random(seed)
    survey = f"soak-survey-{seed}"
    yield _event("survey.defined", survey, START, {"title": "Soak", "questions": [
        {"question_id": "q1", "text": "Satisfied?", "scale": "yes_no", "positive": ["yes"]}]})
    lanes: list[list[dict[str, Any]]] = []
    made, n = 1, 0
    while made < total:
        if n % 3 == 2:
            lanes.append([_others(rng, n, survey)])
        else:
            lanes.append(_complaint(rng, n))
        made += len(lanes[-1])
        n += 1
    # Deal the stories' events round-robin over a window of open stories, so a case's next event comes
    # hundreds of records after its previous one.
    queue = list(reversed(lanes))
    open_: list[list[dict[str, Any]]] = []
    while queue or open_:
        while queue and len(open_) < window:
            open_.append(queue.pop())
        lane = open_[rng.randrange(len(open_))]
        yield lane.pop(0)
        if not lane:
            open_.remove(lane)


async def send(kafka: KafkaSettings, events: list[dict[str, Any]], rate: float | None = None) -> float:
    """Send as fast as the broker takes them (or paced at `rate` per second); events per second."""
    producer = AIOKafkaProducer(**kafka.client_kwargs(), linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        t0 = time.monotonic()
        futures = []
        for i, e in enumerate(events):
            futures.append(await producer.send(inbound_topic(e["type"]), json.dumps(e).encode(),
                                               key=e["subject"].encode()))
            if rate and i % 50 == 0:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        await asyncio.gather(*futures)
        return len(events) / (time.monotonic() - t0)
    finally:
        await producer.stop()


async def settled(url: str, inbound: int, quiet_s: float, timeout_s: float = 600, source: str = "soak/crm") -> None:
    """Wait until every inbound event is in the history and the history stopped growing for `quiet_s`."""
    conn = await asyncpg.connect(url)
    try:
        last, still_since, deadline = -1, time.monotonic(), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = await conn.fetchval("SELECT count(*) FROM events WHERE source = $1", source)
            head = await conn.fetchval("SELECT seq FROM chain_head")
            if head != last:
                last, still_since = head, time.monotonic()
            elif got >= inbound and time.monotonic() - still_since > quiet_s:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"the history did not settle within {timeout_s} s")
    finally:
        await conn.close()


async def breaches_on_alerts(kafka: KafkaSettings) -> set[str]:
    """Ids of every `deadline.breached` on `casefeedback.alerts`."""
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC_ALERTS, p) for p in consumer.partitions_for_topic(TOPIC_ALERTS) or set()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(partitions)
        ids: set[str] = set()
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=10000)).values():
                for record in batch:
                    body = json.loads(record.value)
                    if body["type"] == "deadline.breached":
                        ids.add(body["id"])
        return ids
    finally:
        await consumer.stop()


async def judge_breaches(url: str, alerted: set[str]) -> dict[str, int]:
    """Breaches raised after the act that met their deadline in time was recorded (lies), and the others."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT b.id, b.seq AS breach_seq, "
            "  (SELECT min(a.seq) FROM events a WHERE a.subject = b.subject AND a.source = 'soak/crm' "
            "     AND a.type IN ('complaint.responded', 'complaint.acknowledged') "
            "     AND a.time <= (b.body::jsonb->'data'->>'due')::timestamptz) AS act_seq, "
            "  EXISTS (SELECT 1 FROM events m WHERE m.subject = b.subject AND m.type = 'deadline.met' "
            "     AND m.body::jsonb->'data'->>'due' = b.body::jsonb->'data'->>'due' "
            "     AND m.body::jsonb->'data'->>'kind' = b.body::jsonb->'data'->>'kind' "
            "     AND (m.body::jsonb->'data'->>'late')::boolean = false) AS met_in_time "
            "FROM events b WHERE b.type = 'deadline.breached' AND b.subject LIKE 'soak-%'")
        lies = [r for r in rows if r["met_in_time"] and r["act_seq"] is not None and r["act_seq"] < r["breach_seq"]]
        early = [r for r in rows if r["met_in_time"] and not (r["act_seq"] is not None
                                                               and r["act_seq"] < r["breach_seq"])]
        return {"breaches": len(rows), "on_alerts": len(alerted & {r["id"] for r in rows}),
                "lies_on_alerts": len(alerted & {r["id"] for r in lies}), "lies": len(lies),
                "before_the_act_was_recorded": len(early)}
    finally:
        await conn.close()


async def judge_nightly(url: str) -> dict[str, int]:
    """The nightly cases' breaches, those withdrawn, and the net breaches of deadlines met in time (must be 0)."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "WITH b AS (SELECT e.id, e.subject, e.body::jsonb->'data'->>'due' AS due, EXISTS (SELECT 1 FROM events m "
            "    WHERE m.subject = e.subject AND m.type = 'deadline.met' AND m.body::jsonb->'data'->>'kind' = 'respond'"
            "    AND (m.body::jsonb->'data'->>'late')::boolean = false) AS met_in_time, "
            "  EXISTS (SELECT 1 FROM events w WHERE w.subject = e.subject AND w.type = 'deadline.breach_withdrawn' "
            "    AND w.body::jsonb->'data'->>'breached_id' = e.id) AS withdrawn "
            "  FROM events e WHERE e.type = 'deadline.breached' AND e.subject LIKE 'night-%') "
            "SELECT count(*) AS breaches, count(*) FILTER (WHERE withdrawn) AS withdrawn, "
            "  count(*) FILTER (WHERE met_in_time AND NOT withdrawn) AS net_met_in_time, "
            "  count(*) FILTER (WHERE NOT met_in_time AND NOT withdrawn) AS standing_late, "
            "  count(*) FILTER (WHERE withdrawn AND NOT met_in_time) AS withdrawn_wrongly FROM b")
        return {"nightly_breaches": row["breaches"], "nightly_withdrawn": row["withdrawn"],
                "nightly_breaches_standing_late": row["standing_late"],
                "nightly_withdrawn_wrongly": row["withdrawn_wrongly"],
                "net_breaches_met_in_time": row["net_met_in_time"]}
    finally:
        await conn.close()


def nightly_run(kafka: KafkaSettings, url: str, cases: int, seed: int, grace_s: float) -> dict[str, Any]:
    """The day's complaints, their breaches by the wall clock, then the night's export of the day's responses."""
    day, night = nightly_batches(cases, seed)
    asyncio.run(send(kafka, day))
    asyncio.run(settled(url, len(day), grace_s + 8, source=NIGHTLY_SOURCE))  # the tick has breached them all
    t0 = time.monotonic()
    asyncio.run(send(kafka, night))
    asyncio.run(settled(url, len(day) + len(night), grace_s + 8, source=NIGHTLY_SOURCE))
    return {"nightly_cases": cases, "nightly_settled_after_s": round(time.monotonic() - t0, 1)}


def one_run(total: int, seed: int, rate: float | None, window: int, grace_s: float,
            nightly: int = 0) -> dict[str, Any]:
    """A fresh `casefeedback up`, the stream and the nightly batches, then replay and the breach checks."""
    home = Path(tempfile.mkdtemp(prefix="casefeedback-soak-"))
    up: UpProcess = start_up(home)
    try:
        info = up.run_info
        kafka = KafkaSettings(bootstrap_servers=info["kafka_bootstrap_servers"])
        url = info["database_url"]
        events = list(interleaved(total, seed, window))
        sent_rate = asyncio.run(send(kafka, events, rate))
        t0 = time.monotonic()
        asyncio.run(settled(url, len(events), grace_s + 8))  # the tick waits the grace after a case's last act
        caught_up_s = time.monotonic() - t0
        night = nightly_run(kafka, url, nightly, seed, grace_s) if nightly else {}
        replayed = up.cli("replay", timeout=600)
        verdict = asyncio.run(judge_breaches(url, asyncio.run(breaches_on_alerts(kafka))))
        night |= asyncio.run(judge_nightly(url)) if nightly else {}
        return {"events": len(events), "sent_per_s": round(sent_rate), "settled_after_s": round(caught_up_s, 1),
                **night, "replay_exit": replayed.returncode, "replay_tail": replayed.stdout.strip().splitlines()[-3:],
                **verdict}
    finally:
        stop_up(up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, help=f"events per run (default {FULL['events']:,})")
    parser.add_argument("--runs", type=int, help=f"runs, each on a fresh `up` (default {FULL['runs']})")
    parser.add_argument("--rate", type=float, default=2500, help="events per second (0: as fast as possible)")
    parser.add_argument("--window", type=int, help=f"stories open at once in the stream (default {FULL['window']})")
    parser.add_argument("--grace", type=float,
                        help="CASEFEEDBACK_OUT_OF_ORDER_GRACE_S for the run (default: the default, 30)")
    parser.add_argument("--nightly", type=int,
                        help=f"cases of the nightly-batch sender (default {FULL['nightly']}; 0: none)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, in seconds: prove the soak runs")
    args = parser.parse_args()
    for name, default in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    os.environ["CASEFEEDBACK_OUT_OF_ORDER_GRACE_S"] = str(args.grace)
    failed = False
    for run in range(1, args.runs + 1):
        result = one_run(args.events, run, args.rate, args.window, args.grace, args.nightly)
        print(f"run {run}: {json.dumps(result)}", flush=True)
        failed |= result["replay_exit"] != 0 or result["lies"] + result["before_the_act_was_recorded"] > 0
        failed |= bool(result.get("net_breaches_met_in_time", 0) or result.get("nightly_withdrawn_wrongly", 0))
        if args.nightly:
            print(f"nightly run {run}: {result['nightly_breaches']} breaches, {result['nightly_withdrawn']} withdrawn "
                  f"by in-time responses sent after the due instant, {result['nightly_breaches_standing_late']} "
                  f"standing (late responses), net breaches met in time {result['net_breaches_met_in_time']}",
                  flush=True)
    verdict = "FAILED" if failed else f"{args.runs} run(s): replay exit 0, no breach of a deadline met in time"
    print(f"soak: {verdict}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
