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
from services.cli.report import unfinished_note
from services.common.settings import load_settings
from services.deadlines.calendar import add_working_days
from services.deadlines.procedure_files import load_book
from services.escalation import domain
from tests.helpers import cloudevent
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
    """The JSON value at a dotted path; a key may hold dots itself (learning actions' `local.opened`)."""
    node: Any = document
    parts = path.split(".")
    while parts:
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n])
            if isinstance(node, list) and key.isdigit() or isinstance(node, dict) and key in node:
                node = node[int(key)] if isinstance(node, list) else node[key]
                break
        else:
            raise KeyError(path)
        parts = parts[n:]
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


def _learning(case: str) -> list[dict[str, Any]]:
    """Seed case `case` closed, with a learning plan of two actions, one completed (2011-06)."""
    at = "2011-06-{:02d}T10:00:00+00:00".format
    return [cloudevent("complaint.closed", case, at(1), {}),
            cloudevent("learning.action.added", case, at(2), {"action_id": "a1", "level": "local",
                                                             "description": "team briefing"}),
            cloudevent("learning.action.added", case, at(3), {"action_id": "a2", "level": "organisational",
                                                             "description": "new letter template"}),
            cloudevent("learning.action.completed", case, at(9), {"action_id": "a1"})]


def _count_axes(text: str) -> list[list[str]]:
    """The tick labels of every chart that counts (x axis `number`): matplotlib writes each text as a comment."""
    charts = re.findall(r'<figure class="chart">(.*?)</figure>', text, flags=re.S)
    labelled = [re.findall(r"<!-- (.*?) -->", c) for c in charts]
    return [[t for t in texts if re.fullmatch(r"[-\d.,]+", t)] for texts in labelled if "number" in texts]


def _cells(dom: str) -> list[str]:
    """The text of every table cell."""
    return [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", dom, re.S)]


def test_report_page_says_what_the_markdown_says_in_whole_numbers_and_points(history, tmp_path: Path) -> None:
    """The page carries the provisional note, themes, learning actions, the survey's benchmark and its answers
    by respondent type, as the Markdown does; counts are drawn on whole-number axes; a change of a rate is in
    percentage points."""
    labels = load_settings({}).labels
    events = sorted(history + _learning("dundee2011-case-00"), key=lambda e: e["time"])
    this = ReportBuilder(YEAR, BOOK, labels).add_all(events)
    report, before = this.result(), ReportBuilder(previous_period(YEAR), BOOK, labels).add_all(events).result()
    assert report["learning_actions"] and report["themes"] and report["satisfaction"][0]["benchmark"]
    note = unfinished_note(YEAR, datetime(2011, 12, 1, 12, tzinfo=timezone.utc))
    assert note is not None
    text = render_report_html(report, before, rate_counts(this), unfinished=note)
    _self_contained(text)
    page = tmp_path / "report.html"
    page.write_text(text, encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout.decode()

    assert note in dom.split("<h2>")[0]  # before the first section, as Markdown starts with it
    checked = _figures_match(dom, report)
    for section in ("Themes by service area", "Learning actions by service area", "Customer satisfaction",
                    "By respondent type", "Compared with the previous period"):
        assert f"<h2>{section}</h2>" in dom or f"<h3>{section}</h3>" in dom, section
    tagged = set(re.findall(r'data-figure="([^"]+)"', dom))
    themes = {f"themes.{a}.{t}" for a, ts in report["themes"].items() for t in ts}
    actions = {f"learning_actions.{a}.{k}" for a, ks in report["learning_actions"].items() for k in ks}
    groups = {f"satisfaction.0.by_respondent_type.{g}.ratio" for g in report["satisfaction"][0]["by_respondent_type"]}
    assert themes | actions | groups | {"satisfaction.0.benchmark.value", "satisfaction.0.target"} <= tagged
    assert checked >= 20 + len(themes | actions | groups)
    assert "84% (Scotland)" in dom and "carer" in dom.lower()
    assert "+7.5 points" in dom  # 97.5% satisfied against a 90% target
    assert not [c for c in _cells(dom) if re.search(r"^[+-]\d+(\.\d)?%", c)], "a change of a rate is in points"

    axes = _count_axes(text)
    assert len(axes) == 4 and all(axes), "service area, stage, outcome and compliments count"
    assert [t for ticks in axes for t in ticks if not re.fullmatch(r"\d+", t)] == []
    assert _drew(_screenshot(tmp_path, page, 5000))


def _spso_year(prefix: str, first: date, n: int) -> list[dict[str, Any]]:
    """n spso-mchp complaints from `first` on: most closed at stage 1 (some extended, some late), some serious
    ones closed at stage 2, some escalated after their stage 1 response, a few still open."""
    events = []

    def add(type_: str, subject: str, day: date, hour: int, **data: Any) -> None:
        events.append(cloudevent(type_, subject, datetime.combine(day, datetime.min.time(), timezone.utc)
                                 .replace(hour=hour).isoformat(), data))

    for i in range(n):
        case, day = f"{prefix}-{i:03d}", first + timedelta(days=i * 300 // n)
        serious = i % 7 == 3
        add("complaint.received", case, day, 10, service_area="housing" if i % 2 else "general", channel="phone",
            stage="stage1", serious=serious, procedure="spso-mchp")
        outcome = ("upheld", "not_upheld", "partially_upheld", "resolved")[i % 4]
        if serious:
            add("complaint.responded", case, add_working_days(day, 12 + i % 12, "SCT"), 15, stage="stage2",
                outcome=outcome)
            continue
        if i % 11 == 5:
            add("complaint.extension_agreed", case, add_working_days(day, 2, "SCT"), 11, stage="stage1",
                new_due=add_working_days(day, 9, "SCT").isoformat(), reason="agreed")
        if i % 13 == 12:
            continue  # still open
        add("complaint.responded", case, add_working_days(day, 2 + i % 6, "SCT"), 15, stage="stage1",
            outcome=outcome)
        if i % 5 == 2:
            add("complaint.escalated", case, add_working_days(day, 9, "SCT"), 10, to_stage="stage2")
            add("complaint.responded", case, add_working_days(day, 24 + i % 5, "SCT"), 15, stage="stage2",
                outcome="not_upheld")
    return events


@pytest.fixture(scope="module")
def spso_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two years of spso-mchp complaints beside the Dundee seed's (which the indicators leave out)."""
    years = _spso_year("spso2010", date(2010, 1, 4), 90) + _spso_year("spso2011", date(2011, 1, 4), 120)
    return sorted(history + years, key=lambda e: e["time"])


def test_indicators_page_draws_every_chart_and_states_the_json_figures(spso_history, tmp_path: Path) -> None:
    ind = build_indicators(spso_history, YEAR, BOOK, population=148_000)
    before = build_indicators(spso_history, previous_period(YEAR), BOOK, 148_000)
    assert ind["procedures"] == ["spso-mchp"] and ind["left_out"]["dundee-2011"]["received"] == 60
    assert ind["received"]["total"] == 120 and ind["closed"]["escalated"]["count"] > 0
    text = render_indicators_html(ind, before)
    _self_contained(text)
    page = tmp_path / "indicators.html"
    page.write_text(text, encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout.decode()
    assert _figures_match(dom, ind) == len(rows(ind)) + 2  # every indicator, and the two totals
    closed = ind["closed"]
    assert rate_cell_text(closed["stage1"]["share"], closed["stage1"]["count"], closed["total"]) in dom
    assert "follow the SPSO model: spso-mchp" in dom and "dundee-2011 60 received" in dom
    for cell in _cells(dom):  # each value once: "6.3 (over 4 closed)", never "6.3 6.3 (over 4 closed)"
        words = cell.split()
        assert len(words) < 2 or words[0] != words[1], cell
    changes = re.findall(r'<td class="n change"[^>]*>([^<]*)</td>', dom)
    assert len(changes) == len(rows(ind)) and any("points" in c for c in changes)
    assert not [c for c in changes if "%" in c], "a change of a rate is in percentage points"
    assert _charts_drew(tmp_path, text) == 4
    assert [t for ticks in _count_axes(text) for t in ticks if not re.fullmatch(r"\d+", t)] == []
    assert _drew(_screenshot(tmp_path, page, 3000))


def rate_cell_text(share: float | None, count: int, total: int) -> str:
    """How a rate reads on the page: `94.2% (49 of 52)`."""
    return f"{percent(share)} ({count:,} of {total:,})"
