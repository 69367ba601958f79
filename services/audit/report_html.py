"""The period report and the SPSO indicators as one self-contained HTML page each, written like seed 001's
Customer Care Officer report: the period's tables, charts (matplotlib SVG, inline) and the comparison
with the previous period of the same length. Nothing is fetched when the page is viewed.

Every figure cell carries `data-figure` (its path in the JSON, e.g. `complaints.by_stage.level1`) and,
for rates, `data-value` (the JSON's value): the page states the same figures as the JSON, checkably.
Every rate is printed with its count and denominator ("98.3% (59 of 60)").
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from services.audit import charts
from services.audit.report import Period, ReportBuilder
from services.audit.report_markdown import percent, points
from services.common.figures import DECIDED, UPHELD

Counts = Mapping[str, tuple[int, int]]  # rate name -> (numerator, denominator)

STYLE = """
body { font-family: Georgia, 'Times New Roman', serif; max-width: 60rem; margin: 2rem auto; color: #222;
       line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #1f5f8b; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; color: #1f5f8b; }
table { border-collapse: collapse; margin: .8rem 0 1.2rem; min-width: 28rem; }
th, td { border: 1px solid #bbb; padding: .25rem .6rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #eef3f7; }
figure { margin: 1rem 0 1.6rem; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: .9rem; color: #555; }
.note { font-size: .9rem; color: #555; }
.provisional { border-left: 4px solid #c0392b; background: #fbeeec; padding: .5rem .8rem; }
"""


def previous_period(period: Period) -> Period:
    """The period of the same length just before `period`."""
    length = period.end - period.start
    end = period.start - timedelta(days=1)
    return Period(end - length, end)


def rate_counts(builder: ReportBuilder) -> dict[str, tuple[int, int]]:
    """The numerators and denominators of the report's timeliness and learning rates."""
    return {"acknowledge": builder.timeliness_counts("acknowledge"), "respond": builder.timeliness_counts("respond"),
            "learning_on_time": (builder.learning["on_time"], builder.learning["completed"])}


def _e(text: object) -> str:
    return html.escape(str(text))


def label(key: str) -> str:
    """`childrens_services` -> `Childrens services`, `level1` -> `Level 1`."""
    return re.sub(r"([a-z])(\d)", r"\1 \2", key.replace("_", " ")).capitalize()


def count_cell(path: str, value: int | float | None) -> str:
    """A cell holding a count (or a one-place figure), tagged with its JSON path."""
    shown = "n/a" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:g}"
    return f'<td class="n" data-figure="{_e(path)}">{shown}</td>'


def rate_text(value: float | None, numerator: int, denominator: int) -> str:
    """A rate with its count and denominator: `98.3% (59 of 60)`."""
    return f"{percent(value)} ({numerator:,} of {denominator:,})"


def rate_cell(path: str, value: float | None, numerator: int, denominator: int) -> str:
    """A cell holding a rate, its count and denominator, tagged with its JSON path and value."""
    data = "null" if value is None else repr(value)
    return (f'<td class="n" data-figure="{_e(path)}" data-value="{data}">'
            f"{_e(rate_text(value, numerator, denominator))}</td>")


def figure(svg: str, caption: str) -> str:
    """A chart and its caption."""
    return f'<figure class="chart">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def page(title: str, body: list[str]) -> str:
    """The whole page: inline style, no scripts, nothing fetched."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>\n"
            f"<h1>{_e(title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def _period(p: Mapping[str, str]) -> str:
    return f"{p['from']} to {p['to']}"


def _count_table(heading: str, path: str, this: Mapping[str, int], before: Mapping[str, int] | None,
                 previous_label: str) -> str:
    keys = list(dict.fromkeys([*this, *(before or {})]))
    rows = "".join(f"<tr><th>{_e(label(k))}</th>{count_cell(f'{path}.{k}', this.get(k, 0))}"
                   + (f'<td class="n">{(before or {}).get(k, 0):,}</td>' if before is not None else "") + "</tr>"
                   for k in keys)
    previous = f"<th>{_e(previous_label)}</th>" if before is not None else ""
    return f"<table><tr><th>{_e(heading)}</th><th>this period</th>{previous}</tr>{rows}</table>"


def _upheld_counts(outcomes: Mapping[str, int]) -> tuple[int, int]:
    return sum(outcomes.get(o, 0) for o in UPHELD), sum(outcomes.get(o, 0) for o in DECIDED)


def _complaints_section(report: dict[str, Any], previous: dict[str, Any] | None, counts: Counts) -> list[str]:
    c = report["complaints"]
    p = previous["complaints"] if previous else None
    before = f"previous ({_period(previous['period'])})" if previous else ""
    upheld, decided = _upheld_counts(c["outcomes"])
    ack, resp = counts.get("acknowledge", (0, 0)), counts.get("respond", (0, 0))
    summary = (f"<p>A total of {c['total']} complaints were recorded in the period"
               + (f" ({p['total']} in the previous period of the same length)" if p else "") + ". "
               f"Of the {decided} decided, {upheld} ({percent(c['upheld_rate'])}) were upheld. "
               f"Investigations on {c['outcomes'].get('ongoing', 0)} complaints are still ongoing.</p>")
    rates = ("<table><tr><th>rate</th><th>this period</th><th>what it counts</th></tr>"
             f"<tr><th>Upheld</th>{rate_cell('complaints.upheld_rate', c['upheld_rate'], upheld, decided)}"
             "<td>upheld over decided complaints received in the period</td></tr>"
             "<tr><th>Acknowledged within target</th>"
             f"{rate_cell('complaints.acknowledged_within_target_rate', c['acknowledged_within_target_rate'], *ack)}"
             "<td>acknowledgement deadlines settled in the period that were met</td></tr>"
             "<tr><th>Responded within target</th>"
             f"{rate_cell('complaints.responded_within_target_rate', c['responded_within_target_rate'], *resp)}"
             "<td>response deadlines (set by the procedure or agreed) settled in the period that were met</td></tr>"
             "</table>")
    out = ["<h2>Complaints</h2>", summary,
           f"<p>Total: <span data-figure=\"complaints.total\">{c['total']}</span></p>", rates,
           _count_table("stage reached", "complaints.by_stage", c["by_stage"], p and p["by_stage"], before),
           _count_table("service area", "complaints.by_service_area", c["by_service_area"],
                        p and p["by_service_area"], before),
           _count_table("outcome", "complaints.outcomes", c["outcomes"], p and p["outcomes"], before)]
    return out + _complaint_charts(c, p, previous)


def _labelled(counts: Mapping[str, float] | None) -> dict[str, float] | None:
    return None if counts is None else {label(k): v for k, v in counts.items()}


def _complaint_charts(c: dict[str, Any], p: dict[str, Any] | None, previous: dict[str, Any] | None) -> list[str]:
    names = ("this period", f"previous period ({_period(previous['period'])})" if previous else "")
    out = []
    for title, key in (("Complaints by service area", "by_service_area"), ("Complaints by stage reached", "by_stage"),
                       ("Complaints by outcome", "outcomes")):
        series = charts.pairs((names[0], _labelled(c[key])), (names[1], _labelled(p[key]) if p else None))
        out.append(figure(charts.bars(title, series), f"{title}, this period and the previous one"))
    timeliness = {"Acknowledged": c["acknowledged_within_target_rate"], "Responded": c["responded_within_target_rate"]}
    before = {"Acknowledged": p["acknowledged_within_target_rate"],
              "Responded": p["responded_within_target_rate"]} if p else None
    series = charts.pairs((names[0], timeliness), (names[1], before))
    out.append(figure(charts.bars("Within target (share of deadlines met)", series, percent=True, target=1.0),
                      "Timeliness against target: the share of deadlines met, against all of them met"))
    return out


def _compliments_section(report: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    c = report["compliments"]
    p = previous["compliments"] if previous else None
    before = f"previous ({_period(previous['period'])})" if previous else ""
    out = ["<h2>Compliments</h2>",
           f"<p>The department recorded <span data-figure=\"compliments.total\">{c['total']}</span> compliments "
           "about its services" + (f" ({p['total']} in the previous period)" if p else "") + ".</p>",
           _count_table("service area", "compliments.by_service_area", c["by_service_area"],
                        p and p["by_service_area"], before)]
    series = charts.pairs(("this period", _labelled(c["by_service_area"])),
                          ("previous period", _labelled(p["by_service_area"]) if p else None))
    return out + [figure(charts.bars("Compliments by service area", series), "Compliments by service area")]


def _change(this: int | float | None, before: int | float | None, rate: bool) -> str:
    """The change from the previous period: a count's difference, a rate's in percentage points."""
    if rate:
        return points(this, before)
    if this is None or before is None:
        return "n/a"
    return f"{this - before:+,}" if this != before else "0"


def _comparison(report: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    if previous is None:
        return []
    c, p = report["complaints"], previous["complaints"]
    rows: list[tuple[str, Any, Any, bool]] = [
        ("Complaints", c["total"], p["total"], False),
        ("Compliments", report["compliments"]["total"], previous["compliments"]["total"], False),
        ("Upheld", c["upheld_rate"], p["upheld_rate"], True),
        ("Acknowledged within target", c["acknowledged_within_target_rate"], p["acknowledged_within_target_rate"],
         True),
        ("Responded within target", c["responded_within_target_rate"], p["responded_within_target_rate"], True)]
    body = "".join(f"<tr><th>{_e(n)}</th><td class=\"n\">{_e(percent(a) if r else a)}</td>"
                   f"<td class=\"n\">{_e(percent(b) if r else b)}</td><td class=\"n\">{_e(_change(a, b, r))}</td></tr>"
                   for n, a, b, r in rows)
    return ["<h2>Compared with the previous period</h2>",
            f"<table><tr><th></th><th>{_e(_period(report['period']))}</th><th>{_e(_period(previous['period']))}"
            f"</th><th>change</th></tr>{body}</table>",
            "<p class=\"note\">A change of a rate is in percentage points: from 70% to 35% is -35 points.</p>"]


def _learning_section(report: dict[str, Any], counts: Counts) -> list[str]:
    learning = report["learning"]
    on_time = counts.get("learning_on_time", (0, learning["completed"]))
    return ["<h2>Learning from complaints</h2>", "<table><tr><th>learning stages</th><th>this period</th></tr>"
            f"<tr><th>Opened</th>{count_cell('learning.opened', learning['opened'])}</tr>"
            f"<tr><th>Completed</th>{count_cell('learning.completed', learning['completed'])}</tr>"
            "<tr><th>Completed on time</th>"
            f"{rate_cell('learning.completed_on_time_rate', learning['completed_on_time_rate'], *on_time)}</tr>"
            "</table>"]


def _by_area(heading: str, path: str, counts_by_area: Mapping[str, Mapping[str, int]], what: str,
             name: Any) -> list[str]:
    """One table per section: each service area's counts (themes, learning actions), tagged with their paths."""
    if not counts_by_area:
        return []
    rows = "".join(f"<tr><th>{_e(label(area))}</th><td>{_e(name(key))}</td>{count_cell(f'{path}.{area}.{key}', n)}"
                   "</tr>" for area, counts in counts_by_area.items() for key, n in counts.items())
    return [f"<h2>{_e(heading)}</h2>",
            f"<table><tr><th>service area</th><th>{_e(what)}</th><th>number</th></tr>{rows}</table>"]


def _themes_section(report: dict[str, Any]) -> list[str]:
    return _by_area("Themes by service area", "themes", report.get("themes", {}), "theme",
                    lambda t: label(t).lower())


def _actions_section(report: dict[str, Any]) -> list[str]:
    out = _by_area("Learning actions by service area", "learning_actions", report.get("learning_actions", {}),
                   "level and state", lambda key: key.replace(".", " "))
    return out + ['<p class="note">Actions added to learning plans (opened) and completed in the period.</p>'] \
        if out else []


def _benchmark_cell(i: int, bench: Mapping[str, Any] | None) -> str:
    if not bench:
        return '<td class="n">-</td>'
    value = bench["value"]
    return (f'<td class="n" data-figure="satisfaction.{i}.benchmark.value" data-value="{value!r}">'
            f"{_e(percent(value))} ({_e(bench['label'])})</td>")


def _target_cell(i: int, row: Mapping[str, Any]) -> str:
    target = row.get("target")
    if target is None:
        return '<td class="n">-</td>'
    gap = f" ({points(row['ratio'], target)})" if row["ratio"] is not None else ""
    return (f'<td class="n" data-figure="satisfaction.{i}.target" data-value="{target!r}">'
            f"{_e(percent(target))}{_e(gap)}</td>")


def _respondent_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Each question's result per respondent group, as the Markdown gives them (users and carers apart)."""
    cells = [(r["text"] or r["question"], g, f"satisfaction.{i}.by_respondent_type.{g}.ratio", v)
             for i, r in enumerate(rows) for g, v in (r.get("by_respondent_type") or {}).items()]
    body = "".join(f"<tr><td>{_e(text)}</td><th>{_e(label(g).lower())}</th>"
                   f"{rate_cell(path, v['ratio'], v['positive'], v['responses'])}</tr>" for text, g, path, v in cells)
    if not body:
        return []
    return ["<h3>By respondent type</h3>",
            "<table><tr><th>question</th><th>respondent type</th><th>satisfied</th></tr>" + body + "</table>"]


def _satisfaction_section(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    body = "".join(f"<tr><th>{_e(r['survey'])}</th><td>{_e(r['text'] or r['question'])}</td>"
                   f"{count_cell(f'satisfaction.{i}.responses', r['responses'])}"
                   f"{rate_cell(f'satisfaction.{i}.ratio', r['ratio'], r['positive'], r['responses'])}"
                   f"{_target_cell(i, r)}{_benchmark_cell(i, r.get('benchmark'))}</tr>" for i, r in enumerate(rows))
    return ["<h2>Customer satisfaction</h2>",
            "<table><tr><th>survey</th><th>question</th><th>answers</th><th>satisfied</th>"
            "<th>target (difference)</th><th>benchmark</th></tr>" + body + "</table>",
            '<p class="note">Each question on its own scale: results are never averaged across questions. The '
            "difference from the target is in percentage points.</p>", *_respondent_rows(rows)]


def provisional(note: str | None) -> list[str]:
    """The warning that the period has not ended (its figures will change), or nothing."""
    return [f'<p class="provisional"><strong>Provisional.</strong> {_e(note)}</p>'] if note else []


def render_report_html(report: dict[str, Any], previous: dict[str, Any] | None = None,
                       counts: Counts | None = None, unfinished: str | None = None) -> str:
    """The period report as one page; `previous` is the previous period's report, `counts` the rates' parts,
    `unfinished` the note that the period has not ended (`cli.report.unfinished_note`)."""
    counts = counts or {}
    title = f"Complaints and compliments report, {_period(report['period'])}"
    body = provisional(unfinished) + _complaints_section(report, previous, counts) + _themes_section(report)
    body += _compliments_section(report, previous) + _comparison(report, previous)
    body += _learning_section(report, counts) + _actions_section(report)
    body += _satisfaction_section(report.get("satisfaction", []))
    return page(title, body)
