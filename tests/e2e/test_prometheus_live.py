"""Dashboards and alerts against a real Prometheus: `casefeedback up`, a realistic history through
`casefeedback emit`, a Prometheus scraping the four services every second; every panel query and alert
expression must be valid PromQL returning data, and figures must equal what the history implies."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import demo
from services.common.embedded import free_port, stop_process
from tests.e2e.conftest import UpProcess, start_up, stop_up
from tests.e2e.test_prometheus_config import RULES, alert_rules, dashboard_queries

NOW = datetime.now(UTC).replace(microsecond=0)
SURVEY = "survey-live"
# (overall, respect) answers of service users in the last 30 days: overall 4/5 positive -> 6 of 8
ANSWERS = [("5", True), ("4", True), ("2", True), ("5", False), ("4", True), ("1", False), ("5", True), ("4", True)]
COMPLIMENTS = {"community_care": 5, "housing": 3, "childrens_services": 1}


def history() -> list[dict[str, Any]]:
    """A realistic history: survey and responses, compliments, complaints through both procedures."""
    events = [demo.survey_definition(SURVEY, NOW - timedelta(days=60))]
    for i, (overall, respect) in enumerate(ANSWERS):
        events.append(demo.survey_response(SURVEY, NOW - timedelta(days=i + 1), "service_user", overall, respect, "4"))
    events.append(demo.survey_response(SURVEY, NOW - timedelta(days=2), "carer", "3", True, "5"))
    events.append(demo.survey_response(SURVEY, NOW - timedelta(days=3), "volunteer", "5", True, "5"))  # folded
    for area, n in COMPLIMENTS.items():
        events += [demo.compliment(NOW - timedelta(days=k + 1), area) for k in range(n)]
    events += demo.spso_case("case-live-1", NOW - timedelta(days=70), "housing", "not_upheld", "upheld", True, True)
    events += demo.spso_case("case-live-2", NOW - timedelta(days=65), "general", "resolved", None, True, False)
    events += demo.dundee_case("case-live-3", NOW - timedelta(days=50), "community_care", "upheld", True, True)
    events += demo.dundee_case("case-live-4", NOW - timedelta(days=45), "criminal_justice", "not_upheld", False, False)
    events += demo.unanswered_case("case-live-5", NOW - timedelta(days=20), "childrens_services")
    return events


class Prometheus:
    """A real Prometheus (Debian's package) scraping the running services every second."""

    def __init__(self, tmp: Path, services: dict[str, str], jobs: dict[str, list[str]] | None = None):
        self.port = free_port()
        named = {f"casefeedback-{name}": [url] for name, url in services.items()} | (jobs or {})
        scrape = [{"job_name": job, "static_configs": [{"targets": [u.removeprefix("http://") for u in urls]}]}
                  for job, urls in named.items()]
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(RULES)], "scrape_configs": scrape}
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        poll(self.ready, 60, "Prometheus ready")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            assert self.proc.poll() is None, "prometheus exited; see prometheus.log"
            return False

    def query(self, expr: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as err:
            return dict(json.loads(err.read()))

    def vector(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)
        assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
        return list(answer["data"]["result"])

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 15)
        self.log.close()


def poll(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout_s} s")
        time.sleep(0.5)


@contextlib.contextmanager
def prometheus_over(tmp_path_factory: pytest.TempPathFactory, name: str, events: list[dict[str, Any]],
                    before_scraping: Any = None) -> Iterator[tuple[UpProcess, Prometheus]]:
    """`casefeedback up` with `events` emitted into it, and a real Prometheus scraping its services."""
    assert shutil.which("prometheus"), "Debian's prometheus package is needed (make system-deps)"
    home = tmp_path_factory.mktemp(name)
    up = start_up(home)
    prom = None
    try:
        feed = home / "history.jsonl"
        feed.write_text("".join(json.dumps(e) + "\n" for e in events))
        emitted = up.cli("emit", str(feed))
        assert emitted.returncode == 0, emitted.stdout + emitted.stderr
        if before_scraping is not None:
            before_scraping(up)
        prom = Prometheus(tmp_path_factory.mktemp("prometheus"), up.run_info["services"])
        yield up, prom
    finally:
        if prom is not None:
            prom.stop()
        stop_up(up)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Prometheus]]:
    with prometheus_over(tmp_path_factory, "prom-home", history(), _send_undecodable_record) as running:
        yield running


def _send_undecodable_record(up: UpProcess) -> None:
    """One record that is not JSON, as a broken upstream system would send: intake dead-letters it."""
    script = ("import asyncio, aiokafka, sys\n"
              "async def main():\n"
              "    p = aiokafka.AIOKafkaProducer(bootstrap_servers=sys.argv[1])\n"
              "    await p.start()\n"
              "    await (await p.send('feedback.complaints', b'not json {', key=b'broken'))\n"
              "    await p.stop()\n"
              "asyncio.run(main())\n")
    import sys

    subprocess.run([sys.executable, "-c", script, up.run_info["kafka_bootstrap_servers"]], check=True, timeout=60)


def _figures_arrived(prom: Prometheus) -> bool:
    compliments = prom.vector('sum(casefeedback_compliments_total{job="casefeedback-metrics"})')
    dead = prom.vector("sum(casefeedback_deadletter_total)")
    rated = prom.vector('sum(rate(casefeedback_events_total{service="metrics"}[5m]))')
    return bool(compliments and compliments[0]["value"][1] == str(sum(COMPLIMENTS.values())) and dead and rated)


def test_figures_in_prometheus_equal_what_the_history_implies(system: tuple[UpProcess, Prometheus]) -> None:
    _, prom = system
    poll(lambda: _figures_arrived(prom), 90, "the history's figures in Prometheus")
    by_area = {r["metric"]["service_area"]: float(r["value"][1])
               for r in prom.vector('sum by (service_area) (casefeedback_compliments_received{window="30d"})')}
    assert {a: n for a, n in by_area.items() if n} == COMPLIMENTS
    ratio = prom.vector('sum(casefeedback_satisfaction_positive{survey="survey-live",question="overall",'
                        'respondent_type="service_user",window="30d"}) / sum(casefeedback_satisfaction_responses'
                        '{survey="survey-live",question="overall",respondent_type="service_user",window="30d"})')
    assert float(ratio[0]["value"][1]) == pytest.approx(6 / 8)
    target = prom.vector('max(casefeedback_satisfaction_target_ratio{survey="survey-live",question="overall"})')
    assert float(target[0]["value"][1]) == 0.85
    upheld = prom.vector('sum(casefeedback_complaint_outcomes_total{outcome="upheld"})')
    assert float(upheld[0]["value"][1]) == 2  # case-live-1 at stage2, case-live-3 at level1
    folded = prom.vector('sum(casefeedback_label_folded_total{label="respondent_type"})')
    assert float(folded[0]["value"][1]) == 1  # the volunteer


def _missing(prom: Prometheus, exprs: list[tuple[str, str]]) -> list[str]:
    return [f"{where}: {expr}" for where, expr in exprs if not prom.vector(expr)]


def test_every_dashboard_panel_query_is_valid_and_returns_data(system: tuple[UpProcess, Prometheus]) -> None:
    _, prom = system
    poll(lambda: _figures_arrived(prom), 90, "the history's figures in Prometheus")
    queries = [(f"{d} / {title}", expr) for d, title, expr in dashboard_queries()]
    for _, expr in queries:  # every query parses and evaluates (fails with Prometheus's own message)
        prom.vector(expr)
    missing = _wait_for_data(prom, queries)
    assert not missing, "panels without data:\n" + "\n".join(missing)


def _wait_for_data(prom: Prometheus, queries: list[tuple[str, str]], timeout_s: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        missing = _missing(prom, queries)
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(1)


COMPARISON = re.compile(r"\s*(>|<|==|!=|>=|<=)\s*[0-9.]+\s*$")


def test_every_alert_expression_is_valid_and_its_measure_returns_data(system: tuple[UpProcess, Prometheus]) -> None:
    _, prom = system
    poll(lambda: _figures_arrived(prom), 90, "the history's figures in Prometheus")
    measures = []
    for rule in alert_rules():
        expr = " ".join(rule["expr"].split())
        prom.vector(expr)
        if not expr.startswith("absent("):  # absent() returns data only when something is missing
            measures.append((rule["alert"], COMPARISON.sub("", expr)))
    missing = _wait_for_data(prom, measures)
    assert not missing, "alert measures without data:\n" + "\n".join(missing)
    rules = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{prom.port}/api/v1/rules", timeout=10).read())
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert loaded == {r["alert"] for r in alert_rules()}
    firing = {a["labels"]["alertname"] for a in json.loads(urllib.request.urlopen(
        f"http://127.0.0.1:{prom.port}/api/v1/alerts", timeout=10).read())["data"]["alerts"]}
    assert "CasefeedbackServiceDown" not in firing and "CasefeedbackServiceAbsent" not in firing


def test_the_satisfaction_panel_equals_the_report_on_the_same_history(system: tuple[UpProcess, Prometheus]) -> None:
    up, prom = system
    poll(lambda: _figures_arrived(prom), 90, "the history's figures in Prometheus")
    today = NOW.date()
    made = up.cli("report", "--from", (today - timedelta(days=29)).isoformat(), "--to", today.isoformat())
    assert made.returncode == 0, made.stderr
    rows = {(r["survey"], r["question"]): r for r in json.loads(made.stdout)["satisfaction"]}
    panels = {title: targets for _, title, targets in _panels()}
    expr = panels["Satisfaction by question (30 days)"][0][0]
    shown = {(r["metric"]["survey"], r["metric"]["question"]): float(r["value"][1]) for r in prom.vector(expr)}
    for question in ("overall", "respect", "say"):
        row = rows[(SURVEY, question)]
        assert shown[(SURVEY, question)] == pytest.approx(row["positive"] / row["responses"]), question


def _panels() -> list[tuple[str, str, list[tuple[str, str]]]]:
    from deploy.grafana.build_dashboards import DASHBOARDS

    return [(uid, p.title, p.targets) for uid, (_, ps) in DASHBOARDS.items() for p in ps]
