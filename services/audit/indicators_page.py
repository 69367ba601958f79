"""The SPSO indicators for people: Markdown and a self-contained HTML page, every rate with its count and
denominator, numbered as councils publish them (1a received per 1,000 ... 6 extensions)."""

from __future__ import annotations

from typing import Any, NamedTuple

from services.audit import charts
from services.audit.indicators import BUCKETS
from services.audit.report_html import figure, label, page, provisional, rate_cell, rate_text
from services.audit.report_markdown import points
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


def coverage(ind: dict[str, Any]) -> list[str]:
    """What the indicators cover: the procedures counted, and those left out with their counts."""
    covered = ", ".join(ind.get("procedures") or []) or "none configured"
    lines = [f"Covers the complaints of the procedures that follow the SPSO model: {covered}."]
    left = ind.get("left_out") or {}
    if left:
        lines.append("Left out (other procedures): " + "; ".join(
            f"{p} {c['received']:,} received, {c['closed']:,} closed" for p, c in left.items()) + ".")
    return lines


def render_indicators_markdown(ind: dict[str, Any]) -> str:
    """The indicators as a Markdown table: number, indicator, value with its count and denominator."""
    p = ind["period"]
    lines = [f"# SPSO complaints performance indicators, {p['from']} to {p['to']}", "",
             f"{ind['received']['total']} complaints received, {ind['closed']['total']} closed in the period.", "",
             *coverage(ind), "", "| indicator | what it counts | value |", "| --- | --- | ---: |"]
    lines += [f"| {r.code} | {r.text} | {_shown(r)} |" for r in rows(ind)]
    return "\n".join(lines) + "\n"


def _cell(row: Row) -> str:
    """The value cell, tagged with its JSON path, each value printed once with what it stands on."""
    if row.path.endswith("per_1000") or row.numerator is None:
        return f'<td class="n" data-figure="{row.path}">{_shown(row)}</td>'
    assert row.denominator is not None
    value = row.value if row.value is None or isinstance(row.value, float) else float(row.value)
    return rate_cell(row.path, value, row.numerator, row.denominator)


def _change(row: Row, before: Row | None) -> str:
    """This period against the previous: a share in percentage points, a figure by its difference."""
    if before is None or row.value is None or before.value is None:
        return "n/a"
    if row.path.endswith("share"):
        return points(row.value, before.value)
    difference = round(row.value - before.value, 1)
    return f"{difference:+g}" if difference else "0"


def _table(ind: dict[str, Any], previous: dict[str, Any] | None) -> str:
    before = dict(zip([r.path for r in rows(previous)], rows(previous), strict=True)) if previous else {}
    head = "<tr><th>indicator</th><th>what it counts</th><th>value</th><th>previous period</th><th>change</th></tr>"
    body = "".join(f"<tr><th>{r.code}</th><td>{r.text}</td>{_cell(r)}"
                   f'<td class="n">{_shown(before[r.path]) if r.path in before else "n/a"}</td>'
                   f'<td class="n change">{_change(r, before.get(r.path))}</td></tr>' for r in rows(ind))
    return f"<table>{head}{body}</table>"


def render_indicators_html(ind: dict[str, Any], previous: dict[str, Any] | None = None,
                           unfinished: str | None = None) -> str:
    """The indicators as one page: what they cover, the table beside the previous period, and charts of
    closures, outcomes and timeliness by bucket; `unfinished` says the period has not ended."""
    p = ind["period"]
    body = [*provisional(unfinished),
            f"<p><span data-figure=\"received.total\">{ind['received']['total']}</span> complaints received and "
            f"<span data-figure=\"closed.total\">{ind['closed']['total']}</span> closed in the period"
            + (f" ({previous['received']['total']} and {previous['closed']['total']} in the previous period of the "
               "same length)" if previous else "") + ".</p>",
            *(f'<p class="note">{line}</p>' for line in coverage(ind)), _table(ind, previous),
            '<p class="note">A change of a share is in percentage points: from 70% to 35% is -35 points.</p>']
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
            figure(charts.bars("Average working days to respond", days, axis="working days"),
                   "Indicator 4: average working days"),
            figure(charts.bars("Closed within timescale", within, percent=True, target=1.0),
                   "Indicator 5: share closed within the stage's timescale")]

