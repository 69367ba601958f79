"""`casefeedback history`'s text: status after each act, refused acts, withdrawn breaches, readable erasures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.audit.history import render_story
from services.common.eventstore import StoredEvent
from services.deadlines.procedure_files import load_book

BOOK = load_book()


def stored(seq: int, type_: str, time: str, data: dict[str, Any], source: str = "crm") -> StoredEvent:
    at = datetime.fromisoformat(time)
    body = {"id": f"e{seq}", "type": type_, "subject": "c1", "time": time, "source": source, "data": data}
    return StoredEvent(seq, f"e{seq}", "c1", seq, type_, at, at, body)


RECEIVED = stored(1, "complaint.received", "2026-03-02T09:00:00+00:00",
                  {"stage": "stage1", "serious": False, "service_area": "housing", "channel": "web"})


def test_each_act_shows_the_status_it_leaves_and_a_refused_act_is_listed_as_refused() -> None:
    events = [RECEIVED,
              stored(2, "complaint.responded", "2026-03-04T09:00:00+00:00", {"stage": "stage1", "outcome": "upheld"}),
              stored(3, "complaint.escalated", "2026-03-05T09:00:00+00:00", {"to_stage": "stage3"})]
    text = render_story("c1", events, now=datetime(2026, 3, 6, tzinfo=UTC), book=BOOK)
    lines = text.splitlines()
    assert "stages stage1; outcome upheld; status responded (1 act(s) refused, listed below)" in text
    assert next(line for line in lines if "complaint.received" in line).endswith("status: open")
    assert next(line for line in lines if "complaint.responded" in line).endswith("status: responded")
    refused = next(line for line in lines if "complaint.escalated" in line)
    assert "REFUSED not_allowed: complaint.escalated to_stage stage3: procedure spso-mchp has no stage stage3" \
        in refused


def test_a_withdrawn_breach_is_not_counted_as_breached() -> None:
    due = "2026-03-09T23:59:59+00:00"
    deadline = {"stage": "stage1", "kind": "respond", "due": due}
    events = [RECEIVED, stored(2, "deadline.breached", due, deadline, "casefeedback/escalation"),
              stored(3, "deadline.met", "2026-03-09T15:00:00+00:00", deadline | {"late": False},
                     "casefeedback/escalation"),
              stored(4, "deadline.breach_withdrawn", "2026-03-09T15:00:00+00:00",
                     deadline | {"breached_id": "x", "met_at": "2026-03-09T15:00:00+00:00"}, "casefeedback/escalation")]
    text = render_story("c1", events, book=BOOK)
    assert "deadlines: 1 met (0 late), 0 breached (1 breach(es) withdrawn" in text
    assert "met_at=2026-03-09T15:00:00+00:00" in text


def test_an_erasure_record_reads_as_text_not_as_a_python_dict() -> None:
    erasure = stored(9, "erasure.recorded", "2026-03-10T09:00:00+00:00",
                     {"reason": "request 12", "held": 0,
                      "events": [{"seq": 1, "id": "e1", "fields": ["data.complainant_ref"], "redacted_digest": "ab"}]},
                     "casefeedback/audit")
    line = next(line for line in render_story("c1", [RECEIVED, erasure], book=BOOK).splitlines()
                if "erasure.recorded" in line)
    assert "{" not in line and "'" not in line
    assert "events=(seq 1 id e1 fields data.complainant_ref redacted_digest ab)" in line
