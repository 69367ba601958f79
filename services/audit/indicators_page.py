"""The SPSO indicators for people: Markdown and a self-contained HTML page, every rate with its count and
denominator, numbered as councils publish them (1a received per 1,000 ... 6 extensions)."""

from __future__ import annotations

from typing import Any, NamedTuple

from services.audit import charts
from services.audit.indicators import BUCKETS
from services.audit.report_html import count_cell, figure, label, page, rate_cell, rate_text
from services.common.figures import OUTCOMES

BUCKET_NAMES = {"stage1": "closed at stage 1", "stage2": "closed at stage 2 (direct)",
                "escalated": "closed after escalation"}


class Row(NamedTuple):
    """One published indicator: its number, words, JSON path, value, and the count and denominator of a rate."""

    code: str
    text: str
    path: str
    value: float | int | None
    numerator: int | None = None
    denominator: int | None = None


def rows(ind: dict[str, Any]) -> list[Row]:
    """Every indicator of the period, in the order councils publish them."""
    closed, population = ind["closed"], ind["population"]
    out = [Row("1a", "complaints received per 1,000 population", "received.per_1000", ind["received"]["per_1000"],
               ind["received"]["total"], population),
           Row("1b", "complaints closed per 1,000 population", "closed.per_1000", closed["per_1000"],
               closed["total"], population)]
    for i, b in enumerate(BUCKETS):
        out.append(Row(f"2{'abc'[i]}", f"{BUCKET_NAMES[b]}, of all closed", f"closed.{b}.share",
                       closed[b]["share"], closed[b]["count"], closed["total"]))
    for b in BUCKETS:
        for o in OUTCOMES:
            cell = ind["outcomes"][b][o]
            out.append(Row("3", f"{label(o).lower()}, of those {BUCKET_NAMES[b]}", f"outcomes.{b}.{o}.share",
                           cell["share"], cell["count"], closed[b]["count"]))
    for b in BUCKETS:
        out.append(Row("4", f"average working days to respond, {BUCKET_NAMES[b]}", f"average_working_days.{b}",
                       ind["average_working_days"][b], None, closed[b]["count"]))
    for code, key, words in (("5", "within_timescale", "within the stage's timescale"),
                             ("6", "extended", "with an agreed extension")):
        for b in BUCKETS:
            cell = ind[key][b]
            out.append(Row(code, f"{BUCKET_NAMES[b]} {words}", f"{key}.{b}.share", cell["share"], cell["count"],
                           closed[b]["count"]))
    return out


def _shown(row: Row) -> str:
    if row.path.endswith("per_1000"):
        base = "n/a" if row.value is None else f"{row.value:g}"
        per = f"{row.denominator:,} population" if row.denominator else "no population given"
        return f"{base} ({row.numerator:,} per {per})"
    if row.numerator is None:
        return ("n/a" if row.value is None else f"{row.value:g}") + f" (over {row.denominator:,} closed)"
    assert row.denominator is not None
    return rate_text(row.value if isinstance(row.value, float) or row.value is None else float(row.value),
                     row.numerator, row.denominator)


def render_indicators_markdown(ind: dict[str, Any]) -> str:
    """The indicators as a Markdown table: number, indicator, value with its count and denominator."""
    p = ind["period"]
    lines = [f"# SPSO complaints performance indicators, {p['from']} to {p['to']}", "",
             f"{ind['received']['total']} complaints received, {ind['closed']['total']} closed in the period.", "",
             "| indicator | what it counts | value |", "| --- | --- | ---: |"]
    lines += [f"| {r.code} | {r.text} | {_shown(r)} |" for r in rows(ind)]
    return "\n".join(lines) + "\n"


def _cell(row: Row) -> str:
    if row.path.endswith("per_1000") or row.numerator is None:
        return count_cell(row.path, row.value).replace("</td>", f" <span class=\"note\">{_shown(row)}</span></td>")
    assert row.denominator is not None
    value = row.value if row.value is None or isinstance(row.value, float) else float(row.value)
    return rate_cell(row.path, value, row.numerator, row.denominator)


def render_indicators_html(ind: dict[str, Any], previous: dict[str, Any] | None = None) -> str:
    """The indicators as one page: the table, and charts of closures, outcomes and timeliness by bucket."""
    p = ind["period"]
    table = "".join(f"<tr><th>{r.code}</th><td>{r.text}</td>{_cell(r)}</tr>" for r in rows(ind))
    body = [f"<p><span data-figure=\"received.total\">{ind['received']['total']}</span> complaints received and "
            f"<span data-figure=\"closed.total\">{ind['closed']['total']}</span> closed in the period"
            + (f" ({previous['received']['total']} and {previous['closed']['total']} in the previous period of the "
               "same length)" if previous else "") + ".</p>",
            "<table><tr><th>indicator</th><th>what it counts</th><th>value</th></tr>" + table + "</table>"]
    return page(f"SPSO complaints performance indicators, {p['from']} to {p['to']}", body + _charts(ind, previous))


def _by_bucket(ind: dict[str, Any] | None, pick: Any) -> dict[str, float] | None:
    return None if ind is None else {BUCKET_NAMES[b]: pick(ind, b) or 0 for b in BUCKETS}


def _charts(ind: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    def series(pick: Any) -> dict[str, Any]:
        return charts.pairs(("this period", _by_bucket(ind, pick)), ("previous period", _by_bucket(previous, pick)))

    closed = series(lambda i, b: i["closed"][b]["count"])
    days = series(lambda i, b: i["average_working_days"][b])
    within = series(lambda i, b: i["within_timescale"][b]["share"])
    outcomes = {label(o): ind["outcomes"]["stage1"][o]["count"] for o in OUTCOMES}
    return [figure(charts.bars("Complaints closed, by stage", closed), "Indicator 2: closures by stage"),
            figure(charts.bars("Stage 1 outcomes", {"this period": outcomes}), "Indicator 3: stage 1 outcomes"),
            figure(charts.bars("Average working days to respond", days), "Indicator 4: average working days"),
            figure(charts.bars("Closed within timescale", within, percent=True, target=1.0),
                   "Indicator 5: share closed within the stage's timescale")]

