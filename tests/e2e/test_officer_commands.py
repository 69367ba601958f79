"""What people act on, through `casefeedback up` as a user runs it: the officer's work list (`cases`), one case's
story with its procedure and open deadlines (`history`), and an upstream team's refusals (`deadletters`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.cli import demo
from tests.e2e.conftest import UpProcess, start_up, stop_up

NOW = datetime.now(UTC).replace(microsecond=0)


def _stories() -> list[dict[str, Any]]:
    late = demo.unanswered_case("case-late", NOW - timedelta(days=30), "housing")
    late[0]["data"].pop("procedure")  # no procedure named: the configured default (spso-mchp) applies
    soon = demo.unanswered_case("case-soon", NOW - timedelta(minutes=5), "housing")
    dundee = [demo.event("complaint.received", "case-dundee", NOW - timedelta(hours=1),
                         {"service_area": "community_care", "channel": "phone", "stage": "level1", "serious": False,
                          "procedure": "dundee-2011"})]
    answered = demo.spso_case("case-done", NOW - timedelta(days=40), "general", "resolved", None, True, False)
    replied = demo.unanswered_case("case-replied", NOW - timedelta(days=2), "housing")
    replied.append(demo.event("complaint.responded", "case-replied", NOW - timedelta(days=1),
                              {"stage": "stage1", "outcome": "not_upheld"}))  # answered, not closed
    return late + soon + dundee + answered + replied


# One binary-mode record (attributes in ce_ headers) whose data is invalid, and one record that is not JSON.
REFUSED = """
import asyncio, aiokafka, sys
async def main():
    p = aiokafka.AIOKafkaProducer(bootstrap_servers=sys.argv[1])
    await p.start()
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"bin-1"), ("ce_source", b"crm/east"),
               ("ce_type", b"complaint.received"), ("ce_subject", b"case-bin"),
               ("ce_time", b"2026-01-05T10:00:00+00:00"), ("content-type", b"application/json")]
    await (await p.send("feedback.complaints", b'{"service_area": 5}', key=b"case-bin", headers=headers))
    await (await p.send("feedback.complaints", b"not json {", key=b"broken"))
    await p.stop()
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    home = tmp_path_factory.mktemp("officer-home")
    up = start_up(home)
    try:
        feed = home / "stories.jsonl"
        feed.write_text("".join(json.dumps(e) + "\n" for e in _stories()))
        emitted = up.cli("emit", str(feed))
        assert emitted.returncode == 0, emitted.stderr
        subprocess.run([sys.executable, "-c", REFUSED, up.run_info["kafka_bootstrap_servers"]], check=True,
                       timeout=60)
        yield up
    finally:
        stop_up(up)


def _json(up: UpProcess, *args: str) -> Any:
    result = up.cli(*args, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _poll(check: Any, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(1)


def test_cases_lists_open_complaints_soonest_first_with_filters(system: UpProcess) -> None:
    def listed() -> list[dict[str, Any]]:
        work = _json(system, "cases")
        late = [c for c in work if c["subject"] == "case-late"]
        replied = [c for c in work if c["subject"] == "case-replied" and c["status"] == "responded"]
        return work if len(work) == 4 and late and late[0]["overdue"] and replied else []

    work = _poll(listed)
    assert work[-1] == {"subject": "case-replied", "procedure": "spso-mchp", "stage": "stage1",
                        "service_area": "housing", "kind": None, "due": None, "overdue": False, "status": "responded"}
    work = work[:-1]  # an answered case has no deadline: it is listed last
    # Dundee's acknowledgement (5 days) falls due before the SPSO frontline response (5 working days)
    assert [(c["subject"], c["kind"]) for c in work] == [("case-late", "respond"), ("case-dundee", "acknowledge"),
                                                         ("case-soon", "respond")]
    assert set(work[0]) == {"subject", "procedure", "stage", "service_area", "kind", "due", "overdue", "status"}
    assert work[0] | {"due": None} == {"subject": "case-late", "procedure": "spso-mchp", "stage": "stage1",
                                       "service_area": "housing", "kind": "respond", "due": None, "overdue": True,
                                       "status": "open"}
    assert [c["overdue"] for c in work] == [True, False, False]
    assert [c["subject"] for c in _json(system, "cases", "--overdue")] == ["case-late"]
    assert [c["subject"] for c in _json(system, "cases", "--due-within", "0")] == ["case-late"]
    assert [c["subject"] for c in _json(system, "cases", "--service-area", "community_care")] == ["case-dundee"]
    assert [c["subject"] for c in _json(system, "cases", "--stage", "level1")] == ["case-dundee"]
    table = system.cli("cases")
    assert table.returncode == 0 and table.stdout.startswith("4 complaint(s) open, suspended or answered")
    replied_line = next(line for line in table.stdout.splitlines() if "case-replied" in line)
    assert " responded " in replied_line and "answered" in replied_line
    lines = table.stdout.splitlines()[1:]
    assert len({line.index(" spso-mchp ") if " spso-mchp " in line else None for line in lines} - {None}) == 1
    late_line = next(line for line in table.stdout.splitlines() if "case-late" in line)
    assert "overdue by " in late_line and "working days" in late_line
    assert "working days left" in next(line for line in table.stdout.splitlines() if "case-soon" in line)
    assert system.cli("cases", "--stage", "nowhere").stdout.startswith("no open complaints match")


def test_history_names_the_procedure_orders_by_time_and_shows_open_deadlines(system: UpProcess) -> None:
    _poll(lambda: "deadline.breached" in system.cli("history", "case-late").stdout)
    story = system.cli("history", "case-late")
    assert story.returncode == 0, story.stderr
    assert "procedure spso-mchp (" in story.stdout and "default" not in story.stdout
    lines = story.stdout.splitlines()
    types = [next((t for t in ("complaint.received", "deadline.scheduled", "deadline.warning", "deadline.breached")
                   if f" {t} " in line), None) for line in lines]
    assert [t for t in types if t] == ["complaint.received", "deadline.scheduled", "deadline.warning",
                                       "deadline.breached"]
    opened = lines.index("open deadlines:")
    assert lines[opened + 1].startswith("  stage1 respond due ") and "overdue by " in lines[opened + 1]
    done = system.cli("history", "case-done").stdout
    # its complaint deadlines were met; the learning stage (closed without a returned form) is still open
    assert "\nopen deadlines:\n  learning learning due " in done and "  stage" not in done.split("open deadlines:")[1]
    received = [line for line in done.splitlines() if line.strip()][3:]  # after the heading lines
    times = [line.split()[0] for line in received if line[:4].isdigit()]
    assert times == sorted(times), "events in time order"


def test_deadletters_shows_reason_origin_and_the_event_where_readable(system: UpProcess) -> None:
    letters = _poll(lambda: len(_json(system, "deadletters")) >= 2 and _json(system, "deadletters"))
    binary = next(d for d in letters if d["reason"] == "invalid_data")
    assert (binary["id"], binary["type"], binary["subject"]) == ("bin-1", "complaint.received", "case-bin")
    assert binary["topic"] == "feedback.complaints" and isinstance(binary["offset"], int) and binary["detail"]
    broken = next(d for d in letters if d["reason"] == "not_json")
    assert broken["id"] is None and broken["topic"] == "feedback.complaints"
    assert {d["reason"] for d in _json(system, "deadletters", "--reason", "not_json")} == {"not_json"}
    assert _json(system, "deadletters", "--since", (NOW + timedelta(days=1)).isoformat()) == []
    assert len(_json(system, "deadletters", "--since", "1h")) == len(letters)
    table = system.cli("deadletters", "--reason", "invalid_data")
    assert table.stdout.startswith(f"1 dead letter(s) shown, of {len(letters)} on feedback.deadletter")
    assert "bin-1" in table.stdout and "case-bin" in table.stdout
