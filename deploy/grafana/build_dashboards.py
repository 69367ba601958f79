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
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere in the repository
from services.common.figures import DECIDED, UPHELD, promql_ratio, promql_upheld_rate  # noqa: E402 - the report's

OUT = Path(__file__).parent / "dashboards"


ratio = promql_ratio
OUTCOMES = "casefeedback_complaints_by_outcome"

SAT = ("casefeedback_satisfaction_positive", "casefeedback_satisfaction_responses")
TIMELY = ("casefeedback_timeliness_met", "casefeedback_timeliness_counted")
TARGET = "max by (survey, question) (casefeedback_satisfaction_target_ratio)"
BENCH = "max by (survey, question, benchmark) (casefeedback_satisfaction_benchmark_ratio)"
# Breaches per series net of withdrawals (contract 11.2): both counters are read from the history with the same
# series; a worker that exports no withdrawals counts none.
STANDING = ("(casefeedback_deadlines_breached_total - (casefeedback_deadlines_breach_withdrawn_total "
            "or casefeedback_deadlines_breached_total * 0))")
# Breaches in the last hour that still stand, in whole numbers, as the CasefeedbackDeadlineBreached alert counts
# them: per series, the standing breaches now minus their smallest value in the hour (a withdrawn breach no
# longer counts; increase() would extrapolate one breach to 1.1).
BREACHES_1H = f"sum by (procedure, stage, kind) ( clamp_min({STANDING} - min_over_time({STANDING}[1h:]), 0) )"
# Upheld over decided per service area, as `promql_upheld_rate` (the report's definition) for the whole.
UPHELD_BY_AREA = (f'sum by (service_area) ({OUTCOMES}{{window="365d",outcome=~"{"|".join(UPHELD)}"}}) / '
                  f'sum by (service_area) ({OUTCOMES}{{window="365d",outcome=~"{"|".join(DECIDED)}"}})')


class Panel(NamedTuple):
    """One panel: its title, Grafana panel type, unit, queries (expr, legend) and what it counts over what."""

    title: str
    kind: str
    unit: str
    targets: list[tuple[str, str]]
    description: str


# Stage names are the procedure's own (stage1 of spso-mchp is not stage1 of england-children-2006), so a
# panel groups by stage only together with procedure. `casefeedback_complaints_open`,
# `casefeedback_timeliness_*` and `casefeedback_complaint_outcomes*` carry no `procedure` label: they are shown
# by kind, service area or outcome, never by stage. Timeliness has no `service_area` label either.
NO_STAGE = ("Not split by stage: this metric has no procedure label, and stages of different procedures "
            "(stage1 of spso-mchp, stage1 of england-children-2006) are not the same stage.")
WINDOW = "A window of N days is today and the N - 1 days before it (UTC), as `casefeedback report` over those days."
TIMELY_TEXT = ("Deadlines met on or before their target (the agreed date where an extension was agreed), over "
               "the deadlines settled in the window: met then, or missed (met late, or breached) when they fell "
               "due then; running and cancelled ones are not counted. Sum of met over sum of counted, never an "
               "average of ratios. ")
BY_QUESTION = ("Each question on its own scale (yes/no, 1-5, 0-10): results are never added up across questions. ")

PSK = "{{procedure}} {{stage}} {{kind}}"  # the legend of a series per procedure, stage and kind

# dashboard uid -> (title, panels)
DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "casefeedback-overview": ("casefeedback: overview", [
        Panel("Complaints open", "stat", "none", [("sum(casefeedback_complaints_open)", "open")],
              "Complaints open now, of every procedure: status open (a deadline of the current stage runs) or "
              "suspended (its clock stopped), the same cases `casefeedback cases` lists as open or suspended. "
              + NO_STAGE),
        Panel("Complaints open by service area", "barchart", "none",
              [("sum by (service_area) (casefeedback_complaints_open)", "{{service_area}}")],
              "Complaints open or suspended now, of every procedure, by service area (areas outside the labels "
              "file show as other)."),
        Panel("Deadlines overdue by procedure", "stat", "none",
              [("sum by (procedure) (casefeedback_deadlines_overdue)", "{{procedure}}")],
              "Complaint deadlines (acknowledge or respond) past their due instant and not met, now, per "
              "procedure; suspended deadlines are not counted."),
        Panel("Learning stages overdue", "stat", "none", [("sum(casefeedback_learning_stages_overdue)", "overdue")],
              "Learning stages (opened when a complaint closes) whose 20 working days have passed without the "
              "learning plan being submitted, now."),
        Panel("Satisfaction by question (365 days)", "bargauge", "percentunit",
              [(ratio(*SAT, "survey, question", "365d"), "{{survey}} {{question}}")],
              "Per survey question: positive answers (by the question's own positive answers) over all answers "
              "to it, of responses submitted in the last 365 days. " + BY_QUESTION + WINDOW),
        Panel("Complaints received (30 days) by service area", "barchart", "none",
              [('sum by (service_area) (casefeedback_complaints_received{window="30d"})', "{{service_area}}")],
              "Complaints received in the last 30 days (by the date of receipt), of every procedure, by service "
              "area. " + WINDOW),
        Panel("Compliments (30 days) by service area", "barchart", "none",
              [('sum by (service_area) (casefeedback_compliments_received{window="30d"})', "{{service_area}}")],
              "Compliments received in the last 30 days, by service area. " + WINDOW),
        Panel("Events accepted per second", "timeseries", "ops",
              [('sum by (service) (rate(casefeedback_events_total{result="accepted"}[5m]))', "{{service}}")],
              "Events each service accepted (applied), per second, averaged over the last 5 minutes."),
    ]),
    "casefeedback-timeliness": ("casefeedback: complaints timeliness", [
        Panel("Within target by kind (30 days)", "bargauge", "percentunit",
              [(ratio(*TIMELY, "kind", "30d"), "{{kind}}")],
              "Acknowledge and respond deadlines of every procedure, each kind apart. " + TIMELY_TEXT + WINDOW
              + " Not by stage, procedure or service area: casefeedback_timeliness_met and _counted carry none "
              "of those labels."),
        Panel("Within target by kind (365 days)", "bargauge", "percentunit",
              [(ratio(*TIMELY, "kind", "365d"), "{{kind}}")],
              "As the 30-day panel, over 365 days. " + TIMELY_TEXT + WINDOW),
        Panel("Deadlines counted, met or fell due (365 days)", "table", "none",
              [('sum by (kind) (casefeedback_timeliness_counted{window="365d"})', "{{kind}}")],
              "How many deadlines the 365-day timeliness rates stand on, by kind: those met in the window, and "
              "those that fell due unmet in it. " + NO_STAGE),
        Panel("Deadlines overdue now", "timeseries", "none",
              [("sum by (procedure, stage, kind) (casefeedback_deadlines_overdue)", PSK)],
              "Deadlines past their due instant and not met, at each moment, per procedure, its stage and the "
              "kind (acknowledge or respond); suspended deadlines are not counted."),
        Panel("Deadline breaches (last hour)", "timeseries", "none", [(BREACHES_1H, PSK)],
              "Deadline breaches recorded in the hour before each moment, in whole numbers, per procedure, stage "
              "and kind: the count the CasefeedbackDeadlineBreached alert uses."),
        Panel("Open complaints by service area", "table", "none",
              [("sum by (service_area) (casefeedback_complaints_open)", "{{service_area}}")],
              "Complaints open or suspended now, by service area, as `casefeedback cases` lists them. "
              + NO_STAGE),
        Panel("Complaints received (365 days) by latest outcome", "piechart", "none",
              [(f'sum by (outcome) ({OUTCOMES}{{window="365d"}})', "{{outcome}}")],
              "Complaints received in the last 365 days, by the outcome of their latest response (ongoing: none "
              "yet, or escalated since; withdrawn: withdrawn before any outcome), as `casefeedback report`. "
              + WINDOW),
        Panel("Upheld rate (365 days)", "stat", "percentunit", [(promql_upheld_rate(OUTCOMES, "365d"), "upheld")],
              "Upheld over decided (upheld, partially upheld, not upheld, resolved) complaints received in the "
              "last 365 days, by their latest outcome: the report's upheld rate. " + WINDOW),
        Panel("Upheld rate by service area (365 days)", "bargauge", "percentunit",
              [(UPHELD_BY_AREA, "{{service_area}}")],
              "Per service area: upheld over decided complaints received in the last 365 days, by their latest "
              "outcome (areas with nothing decided show no bar). " + WINDOW),
        Panel("Complaint responses by outcome (all time)", "table", "none",
              [("sum by (outcome) (casefeedback_complaint_outcomes_total)", "{{outcome}}")],
              "Every response recorded with an outcome since the history began, at any stage (a complaint "
              "escalated and answered again counts twice). " + NO_STAGE),
    ]),
    "casefeedback-satisfaction": ("casefeedback: satisfaction against target and benchmark", [
        Panel("Satisfaction by question (365 days)", "bargauge", "percentunit",
              [(ratio(*SAT, "survey, question", "365d"), "{{survey}} {{question}}")],
              "Per survey question: positive answers over all answers to it, of responses submitted in the last "
              "365 days. " + BY_QUESTION + WINDOW),
        Panel("Satisfaction by question (30 days)", "bargauge", "percentunit",
              [(ratio(*SAT, "survey, question", "30d"), "{{survey}} {{question}}")],
              "Per survey question: positive answers over all answers to it, of responses submitted in the last "
              "30 days. " + BY_QUESTION + WINDOW),
        Panel("Target", "table", "percentunit", [(TARGET, "{{survey}} {{question}} target")],
              "Each question's target share of positive answers, as the survey's latest definition sets it."),
        Panel("Benchmark", "table", "percentunit", [(BENCH, "{{survey}} {{question}} {{benchmark}}")],
              "Each question's benchmark (e.g. the Scottish figure), as the survey's latest definition gives it."),
        Panel("Against target (365 days)", "bargauge", "percentunit",
              [(f"{ratio(*SAT, 'survey, question', '365d')} - on (survey, question) {TARGET}",
                "{{survey}} {{question}}")],
              "Per question: the 365-day share of positive answers minus its target (above 0: better than the "
              "target; shown as a share, so 0.05 is 5 percentage points). " + BY_QUESTION),
        Panel("Against benchmark (365 days)", "bargauge", "percentunit",
              [(f"({ratio(*SAT, 'survey, question', '365d')}) - on (survey, question) group_right {BENCH}",
                "{{survey}} {{question}} vs {{benchmark}}")],
              "Per question and benchmark: the 365-day share of positive answers minus the benchmark (0.05 is 5 "
              "percentage points above it). " + BY_QUESTION),
        Panel("Satisfaction by question and respondent type (365 days)", "bargauge", "percentunit",
              [(ratio(*SAT, "survey, question, respondent_type", "365d"),
                "{{survey}} {{question}} {{respondent_type}}")],
              "Per question and respondent group (service users, carers, ...): positive answers over answers "
              "of responses submitted in the last 365 days. " + BY_QUESTION + WINDOW),
        Panel("Answers the figures stand on (365 days)", "table", "none",
              [('sum by (survey, question) (casefeedback_satisfaction_responses{window="365d"})',
                "{{survey}} {{question}}")],
              "How many answers each question's 365-day share stands on (a share of few answers moves a lot)."),
        Panel("Answers to undefined surveys (30 days)", "stat", "none",
              [('sum(casefeedback_satisfaction_unmatched_answers{window="30d"})', "unmatched")],
              "Answers in the last 30 days to surveys with no survey.defined yet: counted nowhere else until "
              "the survey is defined. " + WINDOW),
    ]),
    "casefeedback-learning": ("casefeedback: learning from complaints", [
        Panel("Learning stages open", "stat", "none", [("sum(casefeedback_learning_stages_open)", "open")],
              "Learning stages open now: opened when a complaint closed, not yet ended by a submitted learning "
              "plan."),
        Panel("Learning stages overdue", "stat", "none", [("sum(casefeedback_learning_stages_overdue)", "overdue")],
              "Open learning stages past their 20 working days (counted from the complaint's closure), now."),
        Panel("Learning stages over time", "timeseries", "none",
              [("sum(casefeedback_learning_stages_open)", "open"),
               ("sum(casefeedback_learning_stages_overdue)", "overdue")],
              "Learning stages open at each moment, and of those the ones past their 20 working days."),
        Panel("Learning actions by level and state", "barchart", "none",
              [("sum by (level, state) (casefeedback_learning_actions_total)", "{{level}} {{state}}")],
              "Learning actions added to plans (opened) and completed since the history began, by level "
              "(local, organisational, ...)."),
        Panel("Complaints decided (received in the last 365 days)", "stat", "none",
              [('sum(casefeedback_complaints_by_outcome{window="365d",outcome=~"upheld|partially_upheld|not_upheld|'
                'resolved"})', "decided")],
              "Complaints received in the last 365 days whose latest outcome is upheld, partially upheld, not "
              "upheld or resolved: the report's decided count over the same days (ongoing and withdrawn ones "
              "are not decided). " + WINDOW),
        Panel("Complaint responses with an outcome (365 days)", "stat", "none",
              [('sum(casefeedback_complaint_outcomes{window="365d"})', "responded")],
              "Responses with an outcome dated in the last 365 days, at any stage and of every procedure (a "
              "complaint answered at two stages counts twice). " + WINDOW),
    ]),
    "casefeedback-pipeline": ("casefeedback: pipeline health", [
        Panel("Services up", "stat", "none", [('sum by (job) (up{job=~"casefeedback-.+"})', "{{job}}")],
              "Workers of each service that Prometheus scraped successfully at its last scrape (0: none is up)."),
        Panel("Events by service and result per second", "timeseries", "ops",
              [("sum by (service, result) (rate(casefeedback_events_total[5m]))", "{{service}} {{result}}")],
              "Records each service handled per second (accepted, duplicate, rejected), averaged over the last 5 "
              "minutes."),
        Panel("Dead letters (last hour) by reason", "timeseries", "none",
              [("sum by (reason) (increase(casefeedback_deadletter_total[1h]))", "{{reason}}")],
              "Records sent to feedback.deadletter in the hour before each moment, by reason (internal: a fault "
              "of a service that follows the history); `casefeedback deadletters` lists them."),
        Panel("Delay from intake to applied, p99", "timeseries", "s",
              [("histogram_quantile(0.99, sum by (service, le) (rate(casefeedback_event_delay_seconds_bucket[5m])))",
                "{{service}}")],
              "Seconds from intake accepting an event to each service having applied it: 99 of 100 events of "
              "the last 5 minutes took at most this long."),
        Panel("Delay from intake to applied, p50", "timeseries", "s",
              [("histogram_quantile(0.5, sum by (service, le) (rate(casefeedback_event_delay_seconds_bucket[5m])))",
                "{{service}}")],
              "Seconds from intake accepting an event to each service having applied it: the median over the "
              "last 5 minutes."),
        Panel("Label values folded into 'other'", "table", "none",
              [("sum by (label) (casefeedback_label_folded_total)", "{{label}}")],
              "Events whose service area, respondent type or theme is not in the labels file, so figures show "
              "it as other, since each worker started: add the value to the labels file to show it."),
        Panel("Workers per service", "stat", "none", [('count by (job) (up{job=~"casefeedback-.+"})', "{{job}}")],
              "Workers of each service Prometheus knows of (scraped or not)."),
    ]),
}


def panel(i: int, spec: Panel) -> dict[str, Any]:
    """One Grafana panel on the Prometheus datasource, laid out two per row; its description is the (i) tip."""
    title, kind, unit, targets, description = spec
    return {
        "id": i + 1, "type": kind, "title": title, "description": description,
        "datasource": {"type": "prometheus", "uid": "prometheus"},
        "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [{"refId": chr(65 + j), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "prometheus"}}
                    for j, (expr, legend) in enumerate(targets)],
    }


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    """A whole dashboard document as Grafana's file provisioning reads it."""
    return {
        "uid": uid, "title": title, "tags": ["casefeedback"], "timezone": "utc", "schemaVersion": 39,
        "version": 1, "editable": True, "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "panels": [panel(i, p) for i, p in enumerate(panels)],
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
