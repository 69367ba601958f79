"""Alerting end to end, on Debian's real Prometheus and Alertmanager: `casefeedback up`, deploy/'s alert rules,
an Alertmanager routing to a webhook receiver of this test's own; one breach and one dead letter must each
arrive there as a notification, the breach's saying "1" (a whole number) and naming the procedure.
A breach that an in-time response recorded later withdraws (contract 11.2) resolves its firing alert, and the
webhook hears so. Also: the lag and relay-backlog gauges reach Prometheus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import demo
from services.common.embedded import free_port, stop_process
from tests.e2e.conftest import UpProcess, start_up, stop_up
from tests.e2e.test_prometheus_config import DEPLOY, RULES
from tests.e2e.test_prometheus_live import poll

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class Webhook:
    """A small HTTP server that keeps every Alertmanager notification it is sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def resolved(self) -> list[dict[str, str]]:
        """Labels of every resolved alert notified so far."""
        return [a["labels"] for n in self.received for a in n["alerts"] if a["status"] == "resolved"]

    def firing(self) -> list[dict[str, Any]]:
        """Every firing alert notified so far (labels, annotations, ...)."""
        return [a for n in self.received for a in n["alerts"] if a["status"] == "firing"]

    def alerts(self) -> list[dict[str, str]]:
        """Labels of every firing alert notified so far."""
        return [a["labels"] for a in self.firing()]


def _daemon(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _ready(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{what} exited; see its log"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready within 60 s")


def start_alertmanager(tmp: Path, webhook: Webhook) -> tuple[int, subprocess.Popen[bytes]]:
    """deploy/'s route tree, with this test's webhook as every receiver and waits cut to a second."""
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    config.pop("global", None)  # the SMTP server and its password file are the council's
    config["route"].update(group_wait="1s", group_interval="1s")
    for receiver in config["receivers"]:
        receiver.pop("email_configs", None)
        receiver["webhook_configs"] = [{"url": webhook.url, "send_resolved": True}]
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    assert ALERTMANAGER, "Debian's prometheus-alertmanager package is needed (make system-deps)"
    proc = _daemon([ALERTMANAGER, f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am'}",
                    f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], tmp / "alertmanager.log")
    _ready(port, proc, "alertmanager")
    return port, proc


def start_prometheus(tmp: Path, services: dict[str, str], alertmanager_port: int
                     ) -> tuple[int, subprocess.Popen[bytes]]:
    """deploy/'s rules, the running services scraped every second, alerts sent to the Alertmanager."""
    scrape = [{"job_name": f"casefeedback-{name}", "static_configs": [{"targets": [url.removeprefix("http://")]}]}
              for name, url in services.items()]
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(RULES)],
              "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
              "scrape_configs": scrape}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = _daemon(["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}"], tmp / "prometheus.log")
    _ready(port, proc, "prometheus")
    return port, proc


def query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
        return result


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, int, Webhook]]:
    assert shutil.which("prometheus"), "Debian's prometheus package is needed (make system-deps)"
    up = start_up(tmp_path_factory.mktemp("alert-home"))
    webhook = Webhook()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        am_port, am = start_alertmanager(tmp_path_factory.mktemp("alertmanager"), webhook)
        procs.append(am)
        prom_port, prom = start_prometheus(tmp_path_factory.mktemp("prometheus"), up.run_info["services"], am_port)
        procs.append(prom)
        yield up, prom_port, webhook
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        webhook.server.shutdown()
        stop_up(up)


def _send_not_json(up: UpProcess) -> None:
    script = ("import asyncio, aiokafka, sys\n"
              "async def main():\n"
              "    p = aiokafka.AIOKafkaProducer(bootstrap_servers=sys.argv[1])\n"
              "    await p.start()\n"
              "    await (await p.send('feedback.complaints', b'not json {', key=b'broken'))\n"
              "    await p.stop()\n"
              "asyncio.run(main())\n")
    subprocess.run([sys.executable, "-c", script, up.run_info["kafka_bootstrap_servers"]], check=True, timeout=60)


def test_one_breach_and_one_dead_letter_each_reach_the_webhook(alerting: tuple[UpProcess, int, Webhook]) -> None:
    up, prom, webhook = alerting
    # Prometheus must have seen both counters at 0 before anything happens: that is what makes the first count.
    poll(lambda: query(prom, 'casefeedback_deadlines_breached_total{stage="stage1",kind="respond"} == 0'), 60,
             "the breach counter scraped at 0")
    poll(lambda: query(prom, 'casefeedback_deadletter_total{reason="not_json"} == 0'), 60,
             "the dead-letter counter scraped at 0")
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    feed = up.home / "breach.jsonl"
    feed.write_text("".join(json.dumps(e) + "\n" for e in demo.unanswered_case("case-alert-1", received, "housing")))
    emitted = up.cli("emit", str(feed))
    assert emitted.returncode == 0, emitted.stderr
    _send_not_json(up)

    def both() -> bool:
        alerts = webhook.alerts()
        return any(a["alertname"] == "CasefeedbackDeadlineBreached" and a.get("stage") == "stage1"
                   and a.get("kind") == "respond" for a in alerts) and any(
            a["alertname"] == "CasefeedbackDeadLetters" and a.get("reason") == "not_json" for a in alerts)

    poll(both, 120, f"both notifications at the webhook (got {webhook.alerts()})")
    breach = next(a for a in webhook.firing() if a["labels"]["alertname"] == "CasefeedbackDeadlineBreached")
    assert breach["labels"]["severity"] == "critical" and "partition" not in breach["labels"]
    # One breach is "1", whatever increase() would extrapolate it to over the hour.
    summary = breach["annotations"]["summary"]
    assert summary == "1 respond deadline breached at stage1 of procedure spso-mchp in the last hour", summary
    assert breach["labels"]["procedure"] == "spso-mchp"


def test_lag_and_relay_backlog_gauges_reach_prometheus(alerting: tuple[UpProcess, int, Webhook]) -> None:
    _, prom, _ = alerting
    lag = poll(lambda: query(prom, "sum by (service, topic) (casefeedback_consumer_lag_records)"), 60,
                   "the consumer lag gauge")
    pairs = {(r["metric"]["service"], r["metric"]["topic"]) for r in lag}
    assert {("intake", "feedback.complaints"), ("escalation", "casefeedback.events"),
            ("learning", "casefeedback.events"), ("metrics", "casefeedback.events")} <= pairs
    backlog = poll(lambda: query(prom, 'casefeedback_relay_unpublished_events{job="casefeedback-relay"}'), 60,
                       "the relay backlog gauge")
    assert float(backlog[0]["value"][1]) >= 0
    poll(lambda: not query(prom, "max(casefeedback_relay_unpublished_events) > 0"), 60, "the backlog at 0")


def _alertmanager_active(port: int, alertname: str, procedure: str) -> list[dict[str, Any]]:
    filters = urllib.parse.urlencode([("filter", f'alertname="{alertname}"'), ("filter", f'procedure="{procedure}"'),
                                      ("active", "true"), ("silenced", "false"), ("inhibited", "false")])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts?{filters}", timeout=10) as response:
        alerts: list[dict[str, Any]] = json.loads(response.read())
        return alerts


def test_a_breach_withdrawn_by_a_late_in_time_response_resolves_its_alert(
        alerting: tuple[UpProcess, int, Webhook]) -> None:
    """The nightly export: the tick breached a deadline whose response was given in time but reached intake after
    the due instant had passed; the response withdraws the breach, the firing alert resolves."""
    up, prom, webhook = alerting
    procedure, series = "england-children-2006", 'procedure="england-children-2006",stage="stage1",kind="respond"'
    poll(lambda: query(prom, f"casefeedback_deadlines_breach_withdrawn_total{{{series}}} == 0"), 60,
         "the withdrawal counter scraped at 0")
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    case = "case-alert-withdrawn"
    feed = up.home / "withdrawn-breach.jsonl"
    feed.write_text(json.dumps(demo.event("complaint.received", case, received, {
        "service_area": "childrens_services", "channel": "web", "stage": "stage1", "serious": False,
        "procedure": procedure})) + "\n")
    assert up.cli("emit", str(feed)).returncode == 0

    def firing() -> bool:
        return any(a["alertname"] == "CasefeedbackDeadlineBreached" and a.get("procedure") == procedure
                   for a in webhook.alerts())

    poll(firing, 120, f"the breach alert of {procedure} at the webhook (got {webhook.alerts()})")
    assert not webhook.resolved() or all(a.get("procedure") != procedure for a in webhook.resolved())
    am_port = int(_alertmanager_port(prom))
    assert _alertmanager_active(am_port, "CasefeedbackDeadlineBreached", procedure)

    # the response was given the day after the complaint, long before the due instant; it arrives only now
    feed.write_text(json.dumps(demo.event("complaint.responded", case, received + timedelta(days=1),
                                          {"stage": "stage1", "outcome": "upheld"})) + "\n")
    assert up.cli("emit", str(feed)).returncode == 0
    poll(lambda: query(prom, f"sum(casefeedback_deadlines_breach_withdrawn_total{{{series}}}) == 1"), 60,
         "the withdrawal derived and counted")

    def resolved() -> bool:
        return any(a["alertname"] == "CasefeedbackDeadlineBreached" and a.get("procedure") == procedure
                   for a in webhook.resolved())

    poll(resolved, 120, f"the resolved notification at the webhook (got {webhook.received[-3:]})")
    assert not _alertmanager_active(am_port, "CasefeedbackDeadlineBreached", procedure)
    history = up.cli("history", case)
    assert history.returncode == 0 and "deadline.breach_withdrawn" in history.stdout, history.stdout
    assert "late=no" in history.stdout


def _alertmanager_port(prom: int) -> str:
    """The Alertmanager this Prometheus sends to (as the fixture configured it)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{prom}/api/v1/alertmanagers", timeout=10) as response:
        url = json.loads(response.read())["data"]["activeAlertmanagers"][0]["url"]
    return str(urllib.parse.urlparse(url).port)
