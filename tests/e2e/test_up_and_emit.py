"""`casefeedback up` and `casefeedback emit` as a user runs them."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import psutil

from tests.e2e.conftest import UpProcess, start_up, stop_up

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples" / "inbound.jsonl"


def _read_events(up: UpProcess, want_ids: set[str]) -> list[dict]:
    script = f"""
import asyncio, json, sys
from aiokafka import AIOKafkaConsumer, TopicPartition
async def main():
    c = AIOKafkaConsumer(bootstrap_servers={up.run_info['kafka_bootstrap_servers']!r}, auto_offset_reset='earliest')
    await c.start()
    c.assign([TopicPartition('casefeedback.events', p) for p in c.partitions_for_topic('casefeedback.events')])
    want, seen, out = set({sorted(want_ids)!r}), set(), []
    loop = asyncio.get_running_loop(); end = loop.time() + 60
    while not want <= seen and loop.time() < end:
        for rs in (await c.getmany(timeout_ms=500)).values():
            for r in rs:
                body = json.loads(r.value); out.append(body); seen.add(body['id'])
    await c.stop()
    print(json.dumps(out))
asyncio.run(main())
"""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_up_runs_every_service_emit_publishes_and_stop_leaves_nothing(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    try:
        urls = re.findall(r"^(\w+): metrics (\S+) health (\S+)$", "\n".join(up.lines), re.M)
        assert {name for name, _, _ in urls} == {"intake", "escalation", "learning", "metrics", "relay"}
        for _, metrics_url, health_url in urls:
            health = json.loads(urllib.request.urlopen(health_url, timeout=5).read())
            assert health["status"] == "ok"
            assert b"casefeedback_events_total" in urllib.request.urlopen(metrics_url, timeout=5).read()
        spawned = up.descendants()
        assert len(spawned) >= 7  # broker, database server, four workers, the relay

        emitted = up.cli("emit", str(EXAMPLES))
        assert emitted.returncode == 0, emitted.stderr
        assert emitted.stdout.startswith("sent 16 event(s)")

        ids = {json.loads(line)["id"] for line in EXAMPLES.read_text().splitlines()}
        events = _read_events(up, ids)
        assert ids <= {e["id"] for e in events}
        by_id = {e["id"]: e for e in events}
        original = json.loads(EXAMPLES.read_text().splitlines()[0])
        assert by_id[original["id"]]["data"] == original["data"]
        relay_health = next(h for name, _, h in urls if name == "relay")
        assert json.loads(urllib.request.urlopen(relay_health, timeout=5).read())["published_seq"] >= len(ids)
    finally:
        rest = stop_up(up)
    assert up.proc.returncode == 0, rest
    assert "stopped" in rest
    assert not (tmp_path / "run.json").exists()
    left = [p for p in spawned if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], f"processes left running: {[p.cmdline() for p in left]}"


def test_emit_refuses_a_file_with_a_bad_line_and_sends_nothing(up_system: UpProcess, tmp_path: Path) -> None:
    good = EXAMPLES.read_text().splitlines()[0]
    bad = json.loads(good)
    bad["data"]["serious"] = "perhaps"
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([good, json.dumps(bad), "not json"]) + "\n")
    result = up_system.cli("emit", str(path))
    assert result.returncode == 1
    assert "line 2: invalid_data: data.serious" in result.stderr
    assert "line 3: not_json" in result.stderr
    assert "nothing was sent" in result.stderr


def test_emit_reads_standard_input(up_system: UpProcess) -> None:
    result = up_system.cli("emit", "-", input_=EXAMPLES.read_text().splitlines()[7] + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent 1 event(s): compliment.received: 1"
