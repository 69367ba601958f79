"""The report and indicators pages (`--format html`) rendered by a real headless Chromium: every chart drew,
nothing is fetched, and every figure on the page is the JSON's. The year is seed 001's 2011, so the page
states the seed's figures."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy
import pytest
from PIL import Image

from services.audit.indicators import build_indicators
from services.audit.indicators_page import render_indicators_html, rows
from services.audit.report import Period, ReportBuilder
from services.audit.report_html import previous_period, rate_counts, render_report_html
from services.audit.report_markdown import percent, render_markdown
from services.common.settings import load_settings
from services.deadlines.procedure_files import load_book
from services.escalation import domain
from tests.seed2011 import DECIDED, EXPECTED_2011, seed_2011

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
BOOK = load_book()
YEAR = Period(date(2011, 1, 1), date(2011, 12, 31))
BAR = (0x1F, 0x5F, 0x8B)  # charts.THIS: the bars of this period


def _with_derived(events: list[dict[str, Any]], until: datetime) -> list[dict[str, Any]]:
    """The inbound events with what escalation derives from them, in history order (as replay derives them)."""
    states: dict[str, Any] = {}
    history = []
    for event in events:
        decision = domain.decide(states.get(event["subject"]), event, BOOK)
        states[event["subject"]] = decision.state
        history += [event, *decision.derived]
    for state in states.values():
        if isinstance(state, domain.CaseState):
            history += domain.fire_due(state, until)[1]
    return history


def _year_before() -> list[dict[str, Any]]:
    """2010: the decided part of a year like 2011, 52 weeks earlier (its open cases left out)."""
    shifted = []
    for event in seed_2011("dundee2010"):
        case = re.search(r"-case-(\d+)$", event["subject"])
        if case and int(case.group(1)) >= DECIDED:
            continue
        moved = datetime.fromisoformat(event["time"]) - timedelta(weeks=52)
        shifted.append({**event, "time": moved.isoformat()})
    return shifted


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    end = datetime(2011, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    return _with_derived(sorted(_year_before() + seed_2011(), key=lambda e: e["time"]), end)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp / f"profile-{len(list(tmp.iterdir()))}"
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          timeout=120, check=True)


def _screenshot(tmp: Path, page: Path, height: int) -> Image.Image:
    shot = tmp / f"{page.stem}.png"
    _chromium(tmp, f"--screenshot={shot}", f"--window-size=1000,{height}", page.as_uri())
    return Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")


def _drew(image: Image.Image) -> bool:
    """Not blank: ink on a good share of the shot, and bars in this period's colour."""
    pixels = numpy.asarray(image, dtype=numpy.int32).reshape(-1, 3)
    ink = int((pixels.sum(axis=1) < 600).sum())
    bars = int((numpy.abs(pixels - numpy.array(BAR)).max(axis=1) < 24).sum())
    return ink > len(pixels) * 0.01 and bars > 200


def _charts_drew(tmp: Path, text: str) -> int:
    """Render each chart of the page alone, as the page holds it, and check it drew; returns how many."""
    head = text.split("<body>")[0]
    charts = re.findall(r'<figure class="chart">.*?</figure>', text, flags=re.S)
    for i, chart in enumerate(charts):
        alone = tmp / f"chart-{i}.html"
        alone.write_text(f"{head}<body>{chart}</body></html>", encoding="utf-8")
        assert _drew(_screenshot(tmp, alone, 700)), f"chart {i} is blank: {chart[:200]}"
    return len(charts)


def _value(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for step in path.split("."):
        node = node[int(step)] if isinstance(node, list) else node[step]
    return node


def _figures_match(dom: str, document: dict[str, Any]) -> int:
    """Every tagged figure in the rendered DOM equals the JSON's; returns how many were checked."""
    cells = re.findall(r'data-figure="([^"]+)"(?: data-value="([^"]*)")?>([^<]*)', dom)
    for path, value, shown in cells:
        expected = _value(document, path)
        if value:
            assert (None if value == "null" else float(value)) == expected, path
            assert shown.startswith(percent(expected)), (path, shown)
        else:
            number = shown.split()[0].replace(",", "")
            assert (None if number == "n/a" else float(number)) == expected, (path, shown)
    return len(cells)


def _self_contained(text: str) -> None:
    assert "<script" not in text and "<link" not in text and "<img" not in text
    assert not re.search(r'(src|href)="(https?:)?//', text) and "url(http" not in text


def test_report_page_draws_every_chart_and_states_the_json_figures_of_seed_2011(history, tmp_path: Path) -> None:
    labels = load_settings({}).labels
    this = ReportBuilder(YEAR, BOOK, labels).add_all(history)
    before = ReportBuilder(previous_period(YEAR), BOOK, labels).add_all(history)
    report = this.result()
    assert report["complaints"] == EXPECTED_2011["complaints"]  # the seed's 2011 figures
    assert before.result()["complaints"]["total"] == DECIDED
    text = render_report_html(report, before.result(), rate_counts(this))
    _self_contained(text)
    page = tmp_path / "report.html"
    page.write_text(text, encoding="utf-8")

    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout.decode()
    assert _figures_match(dom, report) >= 20
    assert "98.3% (59 of 60)" in dom and "90.4% (47 of 52)" in dom and "34.6% (18 of 52)" in dom
    assert "2010-01-01 to 2010-12-31" in dom  # the previous period of the same length, compared
    assert _drew(_screenshot(tmp_path, page, 4000))
    assert _charts_drew(tmp_path, text) == 5  # service area, stage, outcome, timeliness, compliments
    markdown = render_markdown(report, rate_counts(this))
    assert "achieved in 98.3% (59 of 60) of cases" in markdown and "in 90.4% (47 of 52)." in markdown


def test_indicators_page_draws_every_chart_and_states_the_json_figures(history, tmp_path: Path) -> None:
    ind = build_indicators(history, YEAR, BOOK, population=148_000)
    text = render_indicators_html(ind, build_indicators(history, previous_period(YEAR), BOOK, 148_000))
    _self_contained(text)
    page = tmp_path / "indicators.html"
    page.write_text(text, encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout.decode()
    assert _figures_match(dom, ind) == len(rows(ind)) + 2  # every indicator, and the two totals
    assert "94.2% (49 of 52)" in dom  # 2a: closed at stage 1, with its count and denominator
    assert _charts_drew(tmp_path, text) == 4
