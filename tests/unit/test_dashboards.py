"""The dashboards a complaints manager reads without help: every panel says what it counts and over what,
no panel adds up stages of different procedures, and satisfaction is shown per question (each question has
its own scale), never summed across questions. (tests/e2e/test_prometheus_live.py runs every query on a real
Prometheus.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
PANELS = [(path.stem, p) for path in sorted(DASHBOARDS.glob("*.json")) for p in json.loads(path.read_text())["panels"]]
GROUPING = re.compile(r"\b(?:sum|max|min|count|avg)\s+by\s*\(([^)]*)\)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)")


def _groupings(expr: str) -> list[tuple[set[str], str]]:
    """Each `agg by (labels) (inner)` of a query: the labels kept and what is aggregated."""
    return [({label.strip() for label in by.split(",")}, inner) for by, inner in GROUPING.findall(expr)]


def _aggregations(expr: str) -> list[tuple[set[str] | None, str]]:
    """Every aggregation of a query with the labels it keeps (None: `sum(...)` keeps none)."""
    plain = [(None, inner) for inner in re.findall(r"\b(?:sum|max|min|count|avg)\s*\(([^()]*)\)", expr)]
    return [*_groupings(expr), *plain]


@pytest.mark.parametrize("dashboard, panel", PANELS, ids=[f"{d}/{p['title']}" for d, p in PANELS])
def test_every_panel_says_what_it_counts_and_over_what(dashboard: str, panel: dict) -> None:
    description = panel.get("description", "")
    assert len(description) >= 60, f"{dashboard} / {panel['title']}: describe what it counts and over what"


def test_no_panel_adds_up_stages_of_different_procedures() -> None:
    summed = [f"{d} / {p['title']}: {t['expr']}" for d, p in PANELS for t in p["targets"]
              for labels, _ in _groupings(t["expr"]) if "stage" in labels and "procedure" not in labels]
    assert not summed, "stage1 of spso-mchp is not stage1 of england-children-2006:\n" + "\n".join(summed)


def test_satisfaction_is_shown_per_question_never_summed_across_scales() -> None:
    across = [f"{d} / {p['title']}: {t['expr']}" for d, p in PANELS for t in p["targets"]
              for labels, inner in _aggregations(t["expr"])
              if "casefeedback_satisfaction_" in inner and "unmatched" not in inner
              and (labels is None or not {"survey", "question"} <= labels)]
    assert not across, "a likert5 answer and a yes/no answer do not add up:\n" + "\n".join(across)
