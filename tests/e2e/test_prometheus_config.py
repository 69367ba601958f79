"""deploy/ as an operator uses it: Prometheus config and alert rules pass promtool (with a unit test per
alert), the compose file holds every part, and the dashboards are the generated ones using known metrics."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "casefeedback.yml"
# Contract section 7, plus what the services add (each exported by exactly one service).
KNOWN_METRICS = {
    "casefeedback_events_total", "casefeedback_deadletter_total", "casefeedback_complaints_open",
    "casefeedback_deadlines_overdue", "casefeedback_deadlines_breached_total", "casefeedback_timeliness_ratio",
    "casefeedback_deadlines_breach_withdrawn_total",
    "casefeedback_timeliness_counted", "casefeedback_timeliness_met", "casefeedback_complaint_outcomes_total",
    "casefeedback_compliments_total", "casefeedback_satisfaction_ratio", "casefeedback_satisfaction_responses",
    "casefeedback_satisfaction_positive", "casefeedback_satisfaction_target_ratio",
    "casefeedback_satisfaction_benchmark_ratio", "casefeedback_learning_stages_open",
    "casefeedback_learning_stages_overdue", "casefeedback_event_delay_seconds_bucket",
    # added by metrics
    "casefeedback_complaint_outcomes", "casefeedback_complaints_received", "casefeedback_compliments_received",
    "casefeedback_satisfaction_unmatched_answers", "casefeedback_label_folded_total",
    # added by learning
    "casefeedback_learning_actions_total",
    # added by escalation
    "casefeedback_complaints_by_outcome",
}


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboards", DEPLOY / "grafana" / "build_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every panel target in deploy/grafana/dashboards."""
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        doc = json.loads(path.read_text())
        out += [(path.stem, p["title"], t["expr"]) for p in doc["panels"] for t in p["targets"]]
    return out


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_promtool_accepts_the_config_and_the_rules() -> None:
    config = promtool("check", "config", "prometheus/prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0 and "9 rules found" in rules.stdout, rules.stdout + rules.stderr


def test_every_alert_has_a_passing_promtool_unit_test() -> None:
    tests = DEPLOY / "prometheus" / "tests" / "casefeedback.test.yml"
    result = promtool("test", "rules", tests.name, cwd=tests.parent)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    tested = {case["alertname"] for t in yaml.safe_load(tests.read_text())["tests"] for case in t["alert_rule_test"]
              if case.get("exp_alerts")}
    assert tested == {r["alert"] for r in alert_rules()}, "every alert must be shown firing by a unit test"


def test_the_compose_file_runs_every_part_from_one_image() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "postgres", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert {"intake", "escalation", "learning", "metrics", "relay"} <= set(services)
    kafka = services["kafka-1"]
    assert kafka["image"].startswith("apache/kafka") and "KAFKA_PROCESS_ROLES" in kafka["environment"]
    for name in ("intake", "escalation", "learning", "metrics"):
        service = services[name]
        assert service["command"] == [name] and service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "container_name" not in services[name] and "ports" not in services[name], "must scale (--scale)"
    scraped = {c["job_name"] for c in yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())[
        "scrape_configs"]}
    assert {f"casefeedback-{n}" for n in ("intake", "escalation", "learning", "metrics", "relay")} <= scraped


def test_grafana_provisioning_names_the_datasource_the_dashboards_use() -> None:
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    uids = {p["datasource"]["uid"] for path in (DEPLOY / "grafana/dashboards").glob("*.json")
            for p in json.loads(path.read_text())["panels"]}
    assert uids == {ds["uid"]}


def test_dashboards_are_the_generated_ones_and_use_known_metrics_only() -> None:
    rendered = builder().render()
    files = {p.name: p.read_text() for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}
    assert files == rendered, "run python deploy/grafana/build_dashboards.py"
    assert {"overview.json", "timeliness.json", "satisfaction.json", "learning.json", "pipeline.json"} == set(files)
    for dashboard, title, expr in dashboard_queries():
        names = set(re.findall(r"casefeedback_[a-z_]+", expr))
        scrape_health = 'up{job=~"casefeedback-.+"}' in expr
        assert (names or scrape_health) and names <= KNOWN_METRICS, f"{dashboard} / {title}: {names - KNOWN_METRICS}"
    averaged = [e for _, _, e in dashboard_queries() if re.search(r"avg\w*\(\s*casefeedback_\w+_ratio", e)]
    assert not averaged, "ratios are sums of numerators over sums of denominators, never averages"


def test_the_breach_panel_counts_breaches_in_whole_numbers_as_the_alert_does() -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == "CasefeedbackDeadlineBreached"]
    counted = " ".join(rule["expr"].split()).removesuffix(" > 0")
    (panel,) = [e for d, title, e in dashboard_queries() if title == "Deadline breaches (last hour)"]
    assert " ".join(panel.split()) == counted and "increase(" not in counted


def test_every_panel_and_rule_that_counts_breaches_counts_them_net_of_withdrawals() -> None:
    exprs = [e for _, _, e in dashboard_queries()] + [r["expr"] for r in alert_rules()]
    counting = [e for e in exprs if "casefeedback_deadlines_breached_total" in e]
    assert len(counting) >= 2
    assert all("casefeedback_deadlines_breach_withdrawn_total" in e for e in counting), counting
