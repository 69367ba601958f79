"""`casefeedback demo` (run by `casefeedback up --demo`): a steady, realistic mix of inbound events.

Complaints through both built-in procedures (SPSO model CHP frontline and investigation, and
Dundee 2011 levels) with acknowledgements, responses, escalations, closures and learning actions;
compliments; a survey defined with targets and the Scottish benchmark, and its responses. Event
times sit near now, with part of the caseload backdated (a realistic backlog) so that deadlines
fall due, are met or breached, and every dashboard moves within a minute. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.registry import inbound_topic
from services.common import kafka
from services.common.figures import OUTCOMES, LabelValues
from services.common.settings import Settings

HELP = "feed a steady, realistic mix of demo events to the running system (used by `up --demo`)"
DEMO_SURVEY = "demo-satisfaction"
Event = dict[str, Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, default=4.0, help="events per second (default 4)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for a repeatable mix")


def event(type_: str, subject: str, when: datetime, data: dict[str, Any], source: str = "demo") -> Event:
    """An inbound CloudEvent."""
    return {"specversion": "1.0", "id": f"demo-{uuid.uuid4().hex}", "source": source, "type": type_,
            "subject": subject, "time": when.isoformat(), "datacontenttype": "application/json", "data": data}


def survey_definition(survey: str, when: datetime) -> Event:
    """A survey with the questions, targets and benchmark of the seeds ("87% ... compared with 84% in Scotland")."""
    return event("survey.defined", survey, when, {"title": "How did we do?", "questions": [
        {"question_id": "overall", "text": "Overall, how satisfied are you with the support you receive?",
         "scale": "likert5", "positive": ["4", "5"], "target": 0.85, "benchmark": {"label": "Scotland", "value": 0.84}},
        {"question_id": "respect", "text": "Were you treated with dignity and respect?", "scale": "yes_no",
         "positive": ["yes"], "target": 0.9, "benchmark": {"label": "Scotland", "value": 0.91}},
        {"question_id": "say", "text": "Did you have a say in how your support was provided?", "scale": "likert5",
         "positive": ["4", "5"], "target": 0.75}]}, source="surveys")


def survey_response(survey: str, when: datetime, respondent: str, overall: str, respect: bool, say: str,
                    area: str = "community_care") -> Event:
    """One response to the demo survey."""
    return event("survey.response.submitted", f"resp-{uuid.uuid4().hex[:12]}", when, {
        "survey_id": survey, "respondent_type": respondent, "service_area": area,
        "answers": {"overall": overall, "respect": respect, "say": say}}, source="surveys")


def compliment(when: datetime, area: str, about: str = "staff") -> Event:
    """A compliment about a service area's staff or service."""
    return event("compliment.received", f"cmp-{uuid.uuid4().hex[:12]}", when,
                 {"service_area": area, "channel": "email", "about": about})


def spso_case(case: str, received: datetime, area: str, outcome1: str, outcome2: str | None,
              closed: bool, plan: bool) -> list[Event]:
    """A complaint under the SPSO model CHP: frontline response, optional escalation to investigation."""
    out = [event("complaint.received", case, received, {"service_area": area, "channel": "phone", "stage": "stage1",
                                                        "serious": False, "themes": ["service_standards"],
                                                        "procedure": "spso-mchp"}),
           event("complaint.responded", case, received + timedelta(days=4), {"stage": "stage1", "outcome": outcome1})]
    if outcome2 is not None:
        out += [event("complaint.escalated", case, received + timedelta(days=6), {"to_stage": "stage2"}),
                event("complaint.acknowledged", case, received + timedelta(days=7), {"stage": "stage2"}),
                event("complaint.responded", case, received + timedelta(days=24), {"stage": "stage2",
                                                                                   "outcome": outcome2})]
    return out + _closure(case, out[-1]["time"], closed, plan)


def dundee_case(case: str, received: datetime, area: str, outcome: str, closed: bool, plan: bool) -> list[Event]:
    """A complaint under the Dundee 2011 procedure, answered at level 1."""
    out = [event("complaint.received", case, received, {"service_area": area, "channel": "letter", "stage": "level1",
                                                        "serious": False, "themes": ["staff_attitude"],
                                                        "procedure": "dundee-2011"}),
           event("complaint.acknowledged", case, received + timedelta(days=2), {"stage": "level1"}),
           event("complaint.responded", case, received + timedelta(days=12), {"stage": "level1", "outcome": outcome})]
    return out + _closure(case, out[-1]["time"], closed, plan)


def unanswered_case(case: str, received: datetime, area: str) -> list[Event]:
    """A frontline complaint nobody has answered yet (its deadline falls due and is breached)."""
    return [event("complaint.received", case, received, {"service_area": area, "channel": "web", "stage": "stage1",
                                                         "serious": False, "procedure": "spso-mchp"})]


def _closure(case: str, last: str, closed: bool, plan: bool) -> list[Event]:
    if not closed:
        return []
    at = datetime.fromisoformat(last) + timedelta(days=1)
    out = [event("complaint.closed", case, at, {})]
    if plan:
        action = f"act-{uuid.uuid4().hex[:8]}"
        out += [event("learning.action.added", case, at + timedelta(days=2),
                      {"action_id": action, "level": "local", "description": "Team briefing on call-backs"}),
                event("learning.action.completed", case, at + timedelta(days=5), {"action_id": action}),
                event("learning.plan.submitted", case, at + timedelta(days=6), {})]
    return out


def random_story(rng: random.Random, now: datetime, labels: LabelValues) -> list[Event]:
    """One realistic piece of traffic, chosen by the mix seen in the seeds' annual reports, over the
    configured service areas and respondent types (what every service shows under its own name)."""
    area = rng.choice(labels.service_areas)
    case = f"case-{uuid.uuid4().hex[:10]}"
    pick = rng.random()
    if pick < 0.35:
        good = rng.random() < 0.85
        respondent = rng.choice(labels.respondent_types)
        return [survey_response(DEMO_SURVEY, now - timedelta(minutes=rng.randint(0, 60)), respondent,
                                rng.choice("45") if good else rng.choice("123"), rng.random() < 0.9,
                                rng.choice("345"), area)]
    if pick < 0.6:
        return [compliment(now - timedelta(minutes=rng.randint(0, 600)), area, rng.choice(("staff", "service")))]
    back = timedelta(days=rng.randint(30, 45), minutes=rng.randint(0, 600))
    if pick < 0.75:
        return spso_case(case, now - back, area, rng.choice(OUTCOMES),
                         rng.choice(OUTCOMES) if rng.random() < 0.3 else None, rng.random() < 0.8, rng.random() < 0.5)
    if pick < 0.9:
        return dundee_case(case, now - back, area, rng.choice(OUTCOMES), rng.random() < 0.8, rng.random() < 0.5)
    return unanswered_case(case, now - timedelta(days=rng.randint(6, 12)), area)


async def feed(settings: Settings, rate: float, rng: random.Random, stop: asyncio.Event,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    """Send the survey definition, then stories at about `rate` events per second until `stop`; return the count."""
    producer = kafka.producer(settings.kafka)
    await producer.start()
    sent = 0
    try:
        sent += await _send(producer, [survey_definition(DEMO_SURVEY, clock() - timedelta(days=90))])
        while not stop.is_set():
            batch = random_story(rng, clock(), settings.labels)
            sent += await _send(producer, batch)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), len(batch) / rate)
    finally:
        await producer.stop()
    return sent


async def _send(producer: Any, events: list[Event]) -> int:
    futures = [await producer.send(inbound_topic(e["type"]), json.dumps(e).encode(), key=e["subject"].encode())
               for e in events]
    await asyncio.gather(*futures)
    return len(events)


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_running_system()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await feed(settings, args.rate, random.Random(args.seed), stop)

    sent = asyncio.run(main())
    print(f"demo: sent {sent} event(s)", flush=True)
    return 0
