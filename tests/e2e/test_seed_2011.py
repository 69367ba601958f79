"""Seed 001's 2011 through the live system: `emit` a year shaped like it, then `report`, `replay` and `history`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg

from tests.e2e.conftest import UpProcess, replay_when_caught_up, start_up, stop_up
from tests.seed2011 import EXPECTED_2011, seed_2011

# What escalation must have derived before the report is final: 60 complaints x 2 deadlines scheduled,
# 60 acknowledgements and 52 responses met, and the 8 open cases' response deadlines (due in 2012)
# breached by the wall-clock tick.
SCHEDULED, MET, OPEN_BREACHED = 120, 112, 8


async def _derived_counts(url: str, prefix: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT type, count(*) AS n FROM events WHERE subject LIKE $1 AND type LIKE 'deadline.%' "
            "AND (type <> 'deadline.breached' OR time >= '2012-01-01') GROUP BY type", f"{prefix}-case-%")
        return {r["type"]: r["n"] for r in rows}
    finally:
        await conn.close()


def _wait_for_derived_events(up: UpProcess, prefix: str, timeout_s: float = 120) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    want = {"deadline.scheduled": SCHEDULED, "deadline.met": MET, "deadline.breached": OPEN_BREACHED}
    while True:
        counts = asyncio.run(_derived_counts(up.run_info["database_url"], prefix))
        if all(counts.get(t, 0) >= n for t, n in want.items()):
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"escalation did not derive the year's deadline events in {timeout_s} s: {counts}")
        time.sleep(0.5)


def test_a_year_like_seed_2011_through_the_live_services_reproduces_the_seed_report(tmp_path: Path) -> None:
    prefix = "dundee2011"
    path = tmp_path / "2011.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in seed_2011(prefix)))
    up = start_up(tmp_path / "home")
    try:
        sent = up.cli("emit", str(path))
        assert sent.returncode == 0, sent.stderr
        counts = _wait_for_derived_events(up, prefix)
        assert counts["deadline.scheduled"] == SCHEDULED and counts["deadline.met"] == MET

        result = up.cli("report", "--from", "2011-01-01", "--to", "2011-12-31", "--format", "json")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["period"] == EXPECTED_2011["period"]
        assert report["complaints"] == EXPECTED_2011["complaints"]
        assert report["compliments"]["total"] == EXPECTED_2011["compliments_total"]
        assert sum(report["compliments"]["by_service_area"].values()) == 131
        assert report["learning"] == EXPECTED_2011["learning"]

        markdown = up.cli("report", "--from", "2011-01-01", "--to", "2011-12-31", "--format", "markdown")
        assert "A total of 60 complaints, 57 Level 1, 3 Level 2, were recorded in the period." in markdown.stdout
        assert "Investigations on 8 complaints are still ongoing." in markdown.stdout

        # The indicators read from the live history equal those computed from the very events sent.
        indicators = up.cli("indicators", "--from", "2011-01-01", "--to", "2011-12-31", "--population", "145000",
                            "--format", "json")
        assert indicators.returncode == 0, indicators.stderr
        from datetime import date

        from services.audit.indicators import build_indicators
        from services.audit.report import Period
        from services.deadlines.procedure_files import load_book

        expected = build_indicators(seed_2011(prefix), Period(date(2011, 1, 1), date(2011, 12, 31)), load_book(),
                                    145000)
        assert json.loads(indicators.stdout) == expected
        # Dundee's 2011 procedure is not the SPSO model: its complaints are counted apart, in no indicator
        assert expected["procedures"] == ["spso-mchp"] and expected["received"]["total"] == 0
        assert expected["left_out"]["dundee-2011"]["received"] == 60

        replayed = replay_when_caught_up(up)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "complaint.received: 60" in replayed.stdout and "compliment.received: 131" in replayed.stdout
        compared = replayed.stdout.split("compared with live: ")[1].splitlines()[0].split(", ")
        assert {"escalation", "metrics"} <= set(compared)

        story = up.cli("history", f"{prefix}-case-07")  # the one late acknowledgement
        assert story.returncode == 0, story.stderr
        assert "complaint.acknowledged" in story.stdout
        assert any("deadline.met" in line and "kind=acknowledge" in line and "late=yes" in line
                   for line in story.stdout.splitlines())
    finally:
        stop_up(up)
