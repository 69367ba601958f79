"""A year of inbound events shaped like seed 001's 2011 (§4.10.3-5, §4.11), for the report to reproduce.

60 complaints under procedure dundee-2011: 57 at level1 and 3 serious ones at level2; 25 community care,
24 children's services, 9 criminal justice, 2 general; 18 upheld, 34 not upheld, 8 received in late
December and still open at the year's end. 59 of 60 acknowledgements on time (one on day 10, answered
on day 12) and 47 of 52 responses on time (five 45 days late): margins wide enough that working or calendar days,
end-of-day or exact-time deadlines all judge them the same. 131 compliments, and one satisfaction
survey like §4.5's equipment survey (39 of 40 satisfied). No complaint is closed, so no learning stage
opens (the learning stage came after 2011).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

PROCEDURE = "dundee-2011"
AREAS = ["community_care"] * 25 + ["childrens_services"] * 24 + ["criminal_justice"] * 9 + ["general"] * 2
THEMES = ["staff_attitude", "service_standards", "communication", "delay"]
COMPLIMENT_AREAS = ["community_care", "childrens_services", "criminal_justice", "welfare_rights", "older_people"]
YEAR_START = datetime(2011, 1, 3, 10, 0, tzinfo=timezone.utc)
ONGOING_START = datetime(2011, 12, 19, 10, 0, tzinfo=timezone.utc)
LEVEL2_CASES = frozenset({10, 30, 50})
LATE_ACK_CASE = 7
LATE_RESPONSE_CASES = frozenset({3, 14, 25, 36, 47})
DECIDED = 52

# The figures contract section 9 quotes for this year (compliments' areas are not in the seed).
EXPECTED_2011: dict[str, Any] = {
    "period": {"from": "2011-01-01", "to": "2011-12-31"},
    "complaints": {
        "total": 60,
        "by_stage": {"level1": 57, "level2": 3},
        "by_service_area": {"community_care": 25, "childrens_services": 24, "criminal_justice": 9, "general": 2},
        "outcomes": {"upheld": 18, "partially_upheld": 0, "not_upheld": 34, "resolved": 0, "ongoing": 8,
                     "withdrawn": 0},  # contract 1.2 adds withdrawn (11.1); the year had none
        "upheld_rate": 0.346,
        "acknowledged_within_target_rate": 0.983,
        "responded_within_target_rate": 0.904,
    },
    "compliments_total": 131,
    "learning": {"opened": 0, "completed": 0, "completed_on_time_rate": None},
}


def _event(prefix: str, type_: str, subject: str, at: datetime, data: dict[str, Any], n: int) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"{prefix}-e{n:04d}", "source": "seed/dundee-2011", "type": type_,
            "subject": subject, "time": at.isoformat(), "datacontenttype": "application/json", "data": data}


def _received_at(i: int) -> datetime:
    if i >= DECIDED:
        return ONGOING_START + timedelta(days=(i - DECIDED) % 5, hours=i - DECIDED)
    return YEAR_START + timedelta(days=6 * i)


def _complaint(prefix: str, i: int, counter: list[int]) -> list[dict[str, Any]]:
    subject, stage = f"{prefix}-case-{i:02d}", ("level2" if i in LEVEL2_CASES else "level1")
    received = _received_at(i)

    def make(type_: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
        counter[0] += 1
        return _event(prefix, type_, subject, at, data, counter[0])

    events = [make("complaint.received", received, {
        "service_area": AREAS[i], "channel": "letter" if i % 3 else "phone", "stage": stage,
        "serious": i in LEVEL2_CASES, "themes": [THEMES[i % len(THEMES)]], "procedure": PROCEDURE})]
    ack_days = 10 if i == LATE_ACK_CASE else 1
    events.append(make("complaint.acknowledged", received + timedelta(days=ack_days), {"stage": stage}))
    if i < DECIDED:
        # a response also acknowledges, so the late acknowledgement's case answers after it (still on time)
        reply_days = 45 if i in LATE_RESPONSE_CASES else 12 if i == LATE_ACK_CASE else 3 + i % 3
        outcome = "upheld" if i % 3 == 0 and i < 54 else "not_upheld"
        events.append(make("complaint.responded", received + timedelta(days=reply_days),
                           {"stage": stage, "outcome": outcome}))
    return events


def _compliments(prefix: str, counter: list[int]) -> list[dict[str, Any]]:
    out = []
    for i in range(131):
        counter[0] += 1
        at = YEAR_START + timedelta(days=(i * 353) // 131, hours=i % 7)
        out.append(_event(prefix, "compliment.received", f"{prefix}-compliment-{i:03d}", at, {
            "service_area": COMPLIMENT_AREAS[i % len(COMPLIMENT_AREAS)], "channel": "letter",
            "about": "staff" if i % 2 else "service"}, counter[0]))
    return out


def _survey(prefix: str, counter: list[int]) -> list[dict[str, Any]]:
    survey_id = f"{prefix}-equipment-survey"
    counter[0] += 1
    events = [_event(prefix, "survey.defined", survey_id, datetime(2011, 11, 1, 9, tzinfo=timezone.utc), {
        "title": "Independent Living and Community Equipment Centre satisfaction", "questions": [{
            "question_id": "overall", "text": "Overall, were you satisfied with the service?", "scale": "yes_no",
            "positive": ["yes"], "target": 0.9, "benchmark": {"label": "Scotland", "value": 0.84}}]}, counter[0])]
    for i in range(40):
        counter[0] += 1
        events.append(_event(prefix, "survey.response.submitted", f"{prefix}-response-{i:02d}",
                             datetime(2011, 11, 10, 9, tzinfo=timezone.utc) + timedelta(hours=i), {
                                 "survey_id": survey_id, "respondent_type": "service_user" if i % 4 else "carer",
                                 "answers": {"overall": "no" if i == 0 else "yes"}}, counter[0]))
    return events


def seed_2011(prefix: str = "dundee2011") -> list[dict[str, Any]]:
    """The year's inbound CloudEvents in time order (ids and subjects start with `prefix`)."""
    counter = [0]
    events = [e for i in range(len(AREAS)) for e in _complaint(prefix, i, counter)]
    events += _compliments(prefix, counter) + _survey(prefix, counter)
    return sorted(events, key=lambda e: (e["time"], e["id"]))
