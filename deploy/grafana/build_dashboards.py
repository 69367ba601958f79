"""Builds the five Grafana dashboards (deploy/grafana/dashboards/*.json) from one table of panels.

Run `python deploy/grafana/build_dashboards.py` after changing a panel; a test checks the JSON files
equal what this writes, and that every query is valid PromQL returning data on a real Prometheus.
Ratios are formed by summing numerators and denominators across workers, never by averaging ratios;
targets and benchmarks (exported once per survey) use max(). A rate the report also gives takes its
numerator and denominator from `services/common/figures.py`, the report's own definition: the upheld
rate from escalation's `casefeedback_complaints_by_outcome` (complaints received in the window by their
latest outcome), timeliness from `casefeedback_timeliness_met`/`_counted` (`figures.settled`). A window
of N days is today and the N - 1 days before it (UTC), the report's `--from`/`--to` over those days.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere in the repository
from services.common.figures import promql_ratio, promql_upheld_rate  # noqa: E402 - the report's definitions

OUT = Path(__file__).parent / "dashboards"


ratio = promql_ratio
OUTCOMES = "casefeedback_complaints_by_outcome"

SAT = ("casefeedback_satisfaction_positive", "casefeedback_satisfaction_responses")
TIMELY = ("casefeedback_timeliness_met", "casefeedback_timeliness_counted")
TARGET = "max by (survey, question) (casefeedback_satisfaction_target_ratio)"
BENCH = "max by (survey, question, benchmark) (casefeedback_satisfaction_benchmark_ratio)"
# Breaches in the last hour in whole numbers, as the CasefeedbackDeadlineBreached alert counts them: the
# counter is read from the history and only grows, so largest minus smallest is exact (increase()
# extrapolates one breach to 1.1).
BREACHES_1H = ("sum by (procedure, stage, kind) ( max_over_time(casefeedback_deadlines_breached_total[1h]) "
               "- min_over_time(casefeedback_deadlines_breached_total[1h]) )")

# dashboard uid -> (title, [(panel title, kind, unit, [(expr, legend)])])
DASHBOARDS: dict[str, tuple[str, list[tuple[str, str, str, list[tuple[str, str]]]]]] = {
    "casefeedback-overview": ("casefeedback: overview", [
        ("Complaints open by stage", "stat", "none", [("sum by (stage) (casefeedback_complaints_open)", "{{stage}}")]),
        ("Deadlines overdue", "stat", "none", [("sum(casefeedback_deadlines_overdue)", "overdue")]),
        ("Learning stages overdue", "stat", "none", [("sum(casefeedback_learning_stages_overdue)", "overdue")]),
        ("Satisfaction, all surveys (365 days)", "stat", "percentunit",
         [(f'sum({SAT[0]}{{window="365d"}}) / sum({SAT[1]}{{window="365d"}})', "satisfied")]),
        ("Complaints received (30 days) by service area", "barchart", "none",
         [('sum by (service_area) (casefeedback_complaints_received{window="30d"})', "{{service_area}}")]),
        ("Compliments (30 days) by service area", "barchart", "none",
         [('sum by (service_area) (casefeedback_compliments_received{window="30d"})', "{{service_area}}")]),
        ("Events accepted per second", "timeseries", "ops",
         [('sum by (service) (rate(casefeedback_events_total{result="accepted"}[5m]))', "{{service}}")]),
    ]),
    "casefeedback-timeliness": ("casefeedback: complaints timeliness", [
        ("Deadlines met on time (30 days)", "bargauge", "percentunit",
         [(ratio(*TIMELY, "stage, kind", "30d"), "{{stage}} {{kind}}")]),
        ("Deadlines met on time (365 days)", "bargauge", "percentunit",
         [(ratio(*TIMELY, "stage, kind", "365d"), "{{stage}} {{kind}}")]),
        ("Within target by kind (30 days)", "bargauge", "percentunit",
         [(ratio(*TIMELY, "kind", "30d"), "{{kind}}")]),
        ("Within target by kind (365 days)", "bargauge", "percentunit",
         [(ratio(*TIMELY, "kind", "365d"), "{{kind}}")]),
        ("Deadlines counted, met or fell due (365 days)", "table", "none",
         [('sum by (stage, kind) (casefeedback_timeliness_counted{window="365d"})', "{{stage}} {{kind}}")]),
        ("Deadlines overdue now", "timeseries", "none",
         [("sum by (procedure, stage, kind) (casefeedback_deadlines_overdue)", "{{procedure}} {{stage}} {{kind}}")]),
        ("Deadline breaches (last hour)", "timeseries", "none", [(BREACHES_1H, "{{procedure}} {{stage}} {{kind}}")]),
        ("Open complaints by stage and service area", "table", "none",
         [("sum by (stage, service_area) (casefeedback_complaints_open)", "{{stage}} {{service_area}}")]),
        ("Complaints received (365 days) by latest outcome", "piechart", "none",
         [(f'sum by (outcome) ({OUTCOMES}{{window="365d"}})', "{{outcome}}")]),
        ("Upheld rate (365 days)", "stat", "percentunit", [(promql_upheld_rate(OUTCOMES, "365d"), "upheld")]),
        ("Complaint outcomes by stage (all time)", "table", "none",
         [("sum by (stage, outcome) (casefeedback_complaint_outcomes_total)", "{{stage}} {{outcome}}")]),
    ]),
    "casefeedback-satisfaction": ("casefeedback: satisfaction against target and benchmark", [
        ("Satisfaction by question (365 days)", "bargauge", "percentunit",
         [(ratio(*SAT, "survey, question", "365d"), "{{survey}} {{question}}")]),
        ("Satisfaction by question (30 days)", "bargauge", "percentunit",
         [(ratio(*SAT, "survey, question", "30d"), "{{survey}} {{question}}")]),
        ("Target", "table", "percentunit", [(TARGET, "{{survey}} {{question}} target")]),
        ("Benchmark", "table", "percentunit", [(BENCH, "{{survey}} {{question}} {{benchmark}}")]),
        ("Against target (365 days)", "bargauge", "percentunit",
         [(f"{ratio(*SAT, 'survey, question', '365d')} - on (survey, question) {TARGET}",
           "{{survey}} {{question}}")]),
        ("Against benchmark (365 days)", "bargauge", "percentunit",
         [(f"({ratio(*SAT, 'survey, question', '365d')}) - on (survey, question) group_right {BENCH}",
           "{{survey}} {{question}} vs {{benchmark}}")]),
        ("Satisfaction by respondent type (365 days)", "bargauge", "percentunit",
         [(ratio(*SAT, "respondent_type", "365d"), "{{respondent_type}}")]),
        ("Answers the figures stand on (365 days)", "table", "none",
         [('sum by (survey, question) (casefeedback_satisfaction_responses{window="365d"})',
           "{{survey}} {{question}}")]),
        ("Answers to undefined surveys (30 days)", "stat", "none",
         [('sum(casefeedback_satisfaction_unmatched_answers{window="30d"})', "unmatched")]),
    ]),
    "casefeedback-learning": ("casefeedback: learning from complaints", [
        ("Learning stages open", "stat", "none", [("sum(casefeedback_learning_stages_open)", "open")]),
        ("Learning stages overdue", "stat", "none", [("sum(casefeedback_learning_stages_overdue)", "overdue")]),
        ("Learning stages over time", "timeseries", "none",
         [("sum(casefeedback_learning_stages_open)", "open"),
          ("sum(casefeedback_learning_stages_overdue)", "overdue")]),
        ("Learning actions by level and state", "barchart", "none",
         [("sum by (level, state) (casefeedback_learning_actions_total)", "{{level}} {{state}}")]),
        ("Complaints closed with an outcome (365 days)", "stat", "none",
         [('sum(casefeedback_complaint_outcomes{window="365d"})', "responded")]),
    ]),
    "casefeedback-pipeline": ("casefeedback: pipeline health", [
        ("Services up", "stat", "none", [('sum by (job) (up{job=~"casefeedback-.+"})', "{{job}}")]),
        ("Events by service and result per second", "timeseries", "ops",
         [("sum by (service, result) (rate(casefeedback_events_total[5m]))", "{{service}} {{result}}")]),
        ("Dead letters (last hour) by reason", "timeseries", "none",
         [("sum by (reason) (increase(casefeedback_deadletter_total[1h]))", "{{reason}}")]),
        ("Delay from intake to applied, p99", "timeseries", "s",
         [("histogram_quantile(0.99, sum by (service, le) (rate(casefeedback_event_delay_seconds_bucket[5m])))",
           "{{service}}")]),
        ("Delay from intake to applied, p50", "timeseries", "s",
         [("histogram_quantile(0.5, sum by (service, le) (rate(casefeedback_event_delay_seconds_bucket[5m])))",
           "{{service}}")]),
        ("Label values folded into 'other'", "table", "none",
         [("sum by (label) (casefeedback_label_folded_total)", "{{label}}")]),
        ("Workers per service", "stat", "none", [('count by (job) (up{job=~"casefeedback-.+"})', "{{job}}")]),
    ]),
}


def panel(i: int, title: str, kind: str, unit: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    """One Grafana panel on the Prometheus datasource, laid out two per row."""
    return {
        "id": i + 1, "type": kind, "title": title,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [{"refId": chr(65 + j), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "prometheus"}}
                    for j, (expr, legend) in enumerate(targets)],
    }


def dashboard(uid: str, title: str, panels: list[tuple[str, str, str, list[tuple[str, str]]]]) -> dict[str, Any]:
    """A whole dashboard document as Grafana's file provisioning reads it."""
    return {
        "uid": uid, "title": title, "tags": ["casefeedback"], "timezone": "utc", "schemaVersion": 39,
        "version": 1, "editable": True, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "panels": [panel(i, *p) for i, p in enumerate(panels)],
    }


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{uid.removeprefix('casefeedback-')}.json": json.dumps(dashboard(uid, *spec), indent=2) + "\n"
            for uid, spec in DASHBOARDS.items()}


def main() -> int:
    """Write the dashboards next to this script."""
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
