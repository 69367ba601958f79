"""The dashboard's upheld rate and timeliness equal `casefeedback report` over the same window and history.

`casefeedback up`, a history fed through `casefeedback emit`, a real Prometheus scraping the services; each
figure's query is taken from the built dashboard JSON (never re-typed) and compared with the report over
the matching whole days (a window of N days is today and the N - 1 days before it, UTC). The history has
what made the two disagree: a complaint escalated after its response (the report counts its latest
outcome, ongoing), partially upheld and resolved outcomes, deadlines met on time, met late, breached and
never met, an extension agreed before and one after the original target passed, a withdrawal before a
deadline fell due, an escalation after one did, and a complaint received before the window whose late
response falls due inside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.cli import demo
from tests.e2e.conftest import UpProcess
from tests.e2e.test_prometheus_config import DEPLOY
from tests.e2e.test_prometheus_live import Prometheus, poll, prometheus_over

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


def _dundee(case: str, received: datetime, ack: int | None, responded: int | None, outcome: str) -> list[Any]:
    """A Dundee 2011 level 1 complaint (acknowledge in 5 days, respond in 14), acts `ack`/`responded` days on."""
    out = [demo.event("complaint.received", case, received, {
        "service_area": "community_care", "channel": "letter", "stage": "level1", "serious": False,
        "procedure": "dundee-2011"})]
    if ack is not None:
        out.append(demo.event("complaint.acknowledged", case, received + ack * DAY, {"stage": "level1"}))
    if responded is not None:
        out.append(demo.event("complaint.responded", case, received + responded * DAY,
                              {"stage": "level1", "outcome": outcome}))
    return out


def _spso(case: str, received: datetime, area: str = "housing") -> list[Any]:
    return [demo.event("complaint.received", case, received, {
        "service_area": area, "channel": "web", "stage": "stage1", "serious": False, "procedure": "spso-mchp"})]


def _act(type_: str, case: str, at: datetime, **data: Any) -> Any:
    return demo.event(type_, case, at, data)


def history() -> list[Any]:
    """Complaints whose figures the report and the dashboard must agree on (see the module docstring)."""
    b, f, k, e = NOW - 100 * DAY, NOW - 60 * DAY, NOW - 90 * DAY, NOW - 25 * DAY
    events = _dundee("fig-a", NOW - 200 * DAY, 2, 20, "upheld")  # acknowledged on time, responded late
    events += _spso("fig-b", b) + [  # responded, then escalated; stage 2 never responds (ongoing, breached)
        _act("complaint.responded", "fig-b", b + 2 * DAY, stage="stage1", outcome="not_upheld"),
        _act("complaint.escalated", "fig-b", b + 6 * DAY, to_stage="stage2"),
        _act("complaint.acknowledged", "fig-b", b + 7 * DAY, stage="stage2")]
    events += demo.spso_case("fig-c", NOW - 150 * DAY, "housing", "not_upheld", "upheld", False, False)
    events += _dundee("fig-d", NOW - 20 * DAY, 7, 12, "partially_upheld")  # acknowledged late
    events += _spso("fig-e", e) + [  # extension agreed before the target; responded after it, before the new one
        _act("complaint.extension_agreed", "fig-e", e + 3 * DAY, stage="stage1",
             new_due=(e + 11 * DAY).date().isoformat(), reason="more time to investigate"),
        _act("complaint.responded", "fig-e", e + 9 * DAY, stage="stage1", outcome="resolved")]
    events += _spso("fig-f", f) + [  # extension agreed after the target was breached
        _act("complaint.extension_agreed", "fig-f", f + 10 * DAY, stage="stage1",
             new_due=(f + 13 * DAY).date().isoformat(), reason="agreed after the target passed"),
        _act("complaint.responded", "fig-f", f + 12 * DAY, stage="stage1", outcome="upheld")]
    events += demo.unanswered_case("fig-g", NOW - 40 * DAY, "childrens_services")  # breached, still open
    events += _dundee("fig-h", NOW - 3 * DAY, None, None, "")  # nothing due yet
    events += _dundee("fig-j", NOW - 370 * DAY, 3, 20, "upheld")  # received before the year, late inside it
    events += _dundee("fig-m", NOW - 40 * DAY, 2, 20, "not_upheld")  # received before 30 days, late inside them
    events += _dundee("fig-k", NOW - 50 * DAY, 1, None, "") + [  # withdrawn before its response fell due
        _act("complaint.withdrawn", "fig-k", NOW - 47 * DAY)]
    events += _spso("fig-l", k, "general") + [  # escalated after its frontline target passed unmet
        _act("complaint.escalated", "fig-l", k + 10 * DAY, to_stage="stage2"),
        _act("complaint.acknowledged", "fig-l", k + 11 * DAY, stage="stage2"),
        _act("complaint.responded", "fig-l", k + 20 * DAY, stage="stage2", outcome="not_upheld")]
    return events


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UpProcess, Prometheus]]:
    with prometheus_over(tmp_path_factory, "figures-home", history()) as running:
        yield running


def panel_query(title: str, dashboard: str = "timeliness") -> str:
    """The one query of a panel of a built dashboard (deploy/grafana/dashboards)."""
    doc = json.loads((DEPLOY / "grafana" / "dashboards" / f"{dashboard}.json").read_text())
    [target] = [p["targets"] for p in doc["panels"] if p["title"] == title]
    assert len(target) == 1, title
    return str(target[0]["expr"])


def report(up: UpProcess, days: int) -> dict[str, Any]:
    """The report's complaints over the window of `days` whole days ending today."""
    today = NOW.date()
    made = up.cli("report", "--from", (today - timedelta(days=days - 1)).isoformat(), "--to", today.isoformat())
    assert made.returncode == 0, made.stderr
    return dict(json.loads(made.stdout)["complaints"])


def _shown(prom: Prometheus, expr: str, by: str | None = None) -> dict[str, float]:
    return {(r["metric"].get(by, "") if by else ""): float(r["value"][1]) for r in prom.vector(expr)}


def _equal_within(shown: dict[str, float], expected: dict[str, float | None]) -> bool:
    """Whether the dashboard shows what the report says (rates to the report's three places)."""
    wanted = {k: v for k, v in expected.items() if v is not None}
    return shown.keys() == wanted.keys() and all(abs(shown[k] - v) < 5e-4 for k, v in wanted.items())


def _compare(prom: Prometheus, expr: str, by: str | None, expected: dict[str, float | None]) -> None:
    """Wait (the services apply, breach and refresh their gauges) until the panel equals the report."""
    last: list[dict[str, float]] = []

    def agrees() -> bool:
        last[:] = [_shown(prom, expr, by)]
        return _equal_within(last[0], expected)

    try:
        poll(agrees, 90, "the panel equal to the report")
    except AssertionError:
        raise AssertionError(f"{expr}\n dashboard shows {last[0] if last else None}\n report says {expected}") from None


def test_the_upheld_rate_panel_equals_the_report(system: tuple[UpProcess, Prometheus]) -> None:
    up, prom = system
    complaints = report(up, 365)
    assert complaints["outcomes"]["ongoing"] >= 2  # fig-b escalated after its response, fig-g, fig-h, ...
    assert complaints["upheld_rate"] == 0.429  # fig-a, fig-c, fig-f upheld over 7 decided
    _compare(prom, panel_query("Upheld rate (365 days)"), None, {"": complaints["upheld_rate"]})


@pytest.mark.parametrize("days", [30, 365])
def test_the_timeliness_panels_equal_the_report(system: tuple[UpProcess, Prometheus], days: int) -> None:
    up, prom = system
    complaints = report(up, days)
    expected = {"acknowledge": complaints["acknowledged_within_target_rate"],
                "respond": complaints["responded_within_target_rate"]}
    assert expected["respond"] is not None
    _compare(prom, panel_query(f"Within target by kind ({days} days)"), "kind", expected)



def _by(prom: Prometheus, expr: str, label: str) -> dict[str, float]:
    return {k: v for k, v in _shown(prom, expr, label).items() if v}


def test_received_and_outcomes_are_one_number_in_the_report_and_the_panel(
        system: tuple[UpProcess, Prometheus]) -> None:
    """Contract 11.1: received, decided and upheld are the same in the report and on the dashboard; a complaint
    withdrawn before its outcome (fig-k) is `withdrawn` in both, not ongoing."""
    up, prom = system
    complaints = report(up, 365)
    assert complaints["outcomes"]["withdrawn"] == 1
    expected: dict[str, float | None] = {o: float(n) for o, n in complaints["outcomes"].items() if n}
    _compare(prom, panel_query("Complaints received (365 days) by latest outcome"), "outcome", expected)
    assert sum(expected.values()) == complaints["total"]  # type: ignore[arg-type]
    decided = sum(complaints["outcomes"][o] for o in ("upheld", "partially_upheld", "not_upheld", "resolved"))
    _compare(prom, panel_query("Complaints decided (received in the last 365 days)", "learning"), None,
             {"": float(decided)})


def test_open_complaints_are_one_number_in_cases_and_the_gauge(system: tuple[UpProcess, Prometheus]) -> None:
    """`casefeedback_complaints_open` counts the `open` and `suspended` cases that `cases` lists, by service area
    (the panel does not split them by stage: the gauge has no procedure, and procedures share stage names)."""
    up, prom = system

    def listed() -> dict[str, float | None]:
        made = up.cli("cases", "--format", "json")
        assert made.returncode == 0, made.stderr
        work = [c for c in json.loads(made.stdout) if c["status"] in ("open", "suspended")]
        counts: dict[str, float | None] = {}
        for c in work:
            counts[c["service_area"]] = (counts.get(c["service_area"]) or 0) + 1
        return counts

    expected = listed()
    assert expected, "the history leaves complaints open"
    _compare(prom, panel_query("Open complaints by service area"), "service_area", expected)
    assert listed() == expected  # nothing moved meanwhile: the two were read of one state
