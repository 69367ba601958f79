"""`casefeedback up --demo`: a newcomer sees the figures behind every dashboard move within a minute,
and the demo feeder stops with `up`."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import psutil

from tests.e2e.conftest import start_up, stop_up

SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+\-]+|NaN)$", re.M)


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {m.group(1) + (m.group(2) or ""): float(m.group(3)) for m in SAMPLE.finditer(text)}


def total(samples: dict[str, float], name: str, contains: str = "") -> float:
    return sum(v for k, v in samples.items() if k.split("{")[0] == name and contains in k)


# service -> (metric, label text it must contain) whose sum must grow while the demo runs
MOVING = {
    "intake": ("casefeedback_events_total", 'result="accepted"'),
    "metrics": ("casefeedback_satisfaction_responses", 'survey="demo-satisfaction"'),
    "escalation": ("casefeedback_events_total", 'service="escalation"'),
    "learning": ("casefeedback_events_total", 'service="learning"'),
}


def _survey_and_compliments_shown(figures: dict[str, float]) -> bool:
    return (total(figures, "casefeedback_compliments_total") > 0
            and total(figures, "casefeedback_satisfaction_target_ratio", 'survey="demo-satisfaction"') > 0)


def test_demo_traffic_moves_every_service_within_a_minute(tmp_path: Path) -> None:
    up = start_up(tmp_path, "--demo")
    try:
        services = up.run_info["services"]
        first = {name: scrape(url) for name, url in services.items()}
        deadline, moved, shown = time.monotonic() + 60, set(), False
        while (moved != set(MOVING) or not shown) and time.monotonic() < deadline:
            time.sleep(2)
            for name, (metric, contains) in MOVING.items():
                if total(scrape(services[name]), metric, contains) > total(first[name], metric, contains):
                    moved.add(name)
            # the mix is random: a compliment may come a few stories after the first survey response
            shown = _survey_and_compliments_shown(scrape(services["metrics"]))
        assert moved == set(MOVING), f"not moving within a minute: {set(MOVING) - moved}"
        assert shown, "no compliments or survey target on /metrics within a minute"
        feeders = [p for p in up.descendants() if "demo" in " ".join(p.cmdline())]
        assert feeders, "up --demo runs the demo feeder"
    finally:
        stop_up(up)
    assert not [p for p in feeders if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "demo outlived up"
