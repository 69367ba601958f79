"""Replay against a live system after realistic traffic, then after one stored event is edited behind its back."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from tests.e2e.conftest import UpProcess, replay_when_caught_up, start_up, stop_up


def _feed_demo(up: UpProcess, seconds: float) -> None:
    demo = subprocess.Popen([sys.executable, "-m", "services.cli", "demo", "--rate", "40", "--seed", "11"],
                            env=up.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(seconds)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(5)


async def _edit_an_outcome(url: str) -> str:
    """Turn one recorded response's outcome around, as someone with database access might; return its case."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow("SELECT id, subject, body::text AS body FROM events "
                                  "WHERE type = 'complaint.responded' ORDER BY seq LIMIT 1")
        body = json.loads(row["body"])
        body["data"]["outcome"] = "not_upheld" if body["data"]["outcome"] == "upheld" else "upheld"
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update")
        await conn.execute("UPDATE events SET body = $2::json WHERE id = $1", row["id"], json.dumps(body))
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update")
        return str(row["subject"])
    finally:
        await conn.close()


def test_replay_proves_the_live_state_after_traffic_and_names_the_case_of_an_edited_event(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    try:
        _feed_demo(up, 15)
        replayed = replay_when_caught_up(up)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "compared with live: escalation, learning, metrics" in replayed.stdout
        assert "complaint.received: " in replayed.stdout and "deadline.met: " in replayed.stdout
        assert "no differences" in replayed.stdout
        parallel = up.cli("replay", "--workers", "2")  # shards' states absorbed, then compared with live
        assert parallel.returncode == 0, parallel.stdout + parallel.stderr
        assert "compared with live: escalation, learning, metrics" in parallel.stdout
        counts = [line for line in replayed.stdout.splitlines() if line.startswith("  ")]
        assert counts == [line for line in parallel.stdout.splitlines() if line.startswith("  ")]

        case = asyncio.run(_edit_an_outcome(up.run_info["migration_database_url"]))  # the owner: services may not
        tampered = up.cli("replay")
        assert tampered.returncode == 1, tampered.stdout
        assert f"first differing case: {case}" in tampered.stdout
        assert f"{case} (chain): event" in tampered.stdout and "was edited" in tampered.stdout
    finally:
        stop_up(up)
