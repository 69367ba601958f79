"""The period report as Markdown, written like seed 001's annual report (§4.10-4.11)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


def percent(value: float | None) -> str:
    """A ratio as a percentage to one place (97.5%, 90%), or 'n/a' when nothing was counted."""
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}".removesuffix(".0") + "%"


def points(value: float | None, reference: float | None) -> str:
    """The change from `reference` to `value`, two rates, in percentage points (`+7.5 points`, `-35 points`),
    never as a percentage (a fall from 70% to 35% is 35 points, not 35% nor 50%); 'n/a' without both."""
    if value is None or reference is None:
        return "n/a"
    change = round((value - reference) * 100, 1)
    shown = f"{abs(change):.1f}".removesuffix(".0")
    return "0 points" if change == 0 else f"{'+' if change > 0 else '-'}{shown} points"


def _label(key: str) -> str:
    """`childrens_services` -> `Childrens services`, `level1` -> `Level 1`."""
    return re.sub(r"([a-z])(\d)", r"\1 \2", key.replace("_", " ")).capitalize()


def _table(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return []
    lines = [f"| {title} | number |", "| --- | ---: |"]
    lines += [f"| {_label(k)} | {v} |" for k, v in counts.items()]
    return lines + [""]


def _of(counts: Mapping[str, tuple[int, int]], key: str) -> str:
    """` (59 of 60)`: a rate's count and denominator, where the caller knows them."""
    return f" ({counts[key][0]} of {counts[key][1]})" if key in counts else ""


def _complaints(c: dict[str, Any], counts: Mapping[str, tuple[int, int]]) -> list[str]:
    stages = ", ".join(f"{n} {_label(s)}" for s, n in c["by_stage"].items())
    areas = ", ".join(f"{n} {_label(a)}" for a, n in c["by_service_area"].items())
    o = c["outcomes"]
    decided = o["upheld"] + o["partially_upheld"] + o["not_upheld"] + o["resolved"]
    lines = ["## Complaints", "",
             f"A total of {c['total']} complaints{', ' + stages if stages else ''}, were recorded in the period."
             + (f" These include {areas} complaints." if areas else ""), ""]
    lines.append(f"Of the {decided} decided, {o['upheld']} ({percent(c['upheld_rate'])}) were upheld, "
                 f"{o['partially_upheld']} partially upheld, {o['not_upheld']} not upheld and {o['resolved']} "
                 f"resolved. Investigations on {o['ongoing']} complaints are still ongoing.")
    lines += ["", f"Acknowledgement targets were achieved in {percent(c['acknowledged_within_target_rate'])}"
              f"{_of(counts, 'acknowledge')} of cases and response targets (set by the procedure or agreed with "
              f"the complainant) in {percent(c['responded_within_target_rate'])}{_of(counts, 'respond')}.", ""]
    return lines + _table("stage reached", c["by_stage"]) + _table("service area", c["by_service_area"]) \
        + _table("outcome", o)


def _by_area(title: str, counts_by_area: dict[str, dict[str, int]], name: Callable[[str], str]) -> list[str]:
    """A heading and one line per service area listing its counts (themes, learning actions)."""
    if not counts_by_area:
        return []
    lines = [f"### {title}", ""]
    for area, counts in counts_by_area.items():
        lines.append(f"- {_label(area)}: " + ", ".join(f"{name(key)} ({n})" for key, n in counts.items()))
    return lines + [""]


def _themes(themes: dict[str, dict[str, int]]) -> list[str]:
    return _by_area("Themes by service area", themes, lambda t: _label(t).lower())


def _actions(by_area: dict[str, dict[str, int]]) -> list[str]:
    return _by_area("Learning actions by service area", by_area, lambda key: key.replace(".", " "))


def _compliments(c: dict[str, Any]) -> list[str]:
    return ["## Compliments", "", f"The department recorded {c['total']} compliments about its services.", ""] \
        + _table("service area", c["by_service_area"])


def _learning(learning: dict[str, Any], counts: Mapping[str, tuple[int, int]]) -> list[str]:
    return ["## Learning from complaints", "",
            f"{learning['opened']} learning stages were opened and {learning['completed']} completed, "
            f"{percent(learning['completed_on_time_rate'])}{_of(counts, 'learning_on_time')} of them within the "
            "time allowed.", ""]


def _satisfaction_line(row: dict[str, Any]) -> str:
    line = (f"| {row['survey']} | {row['question']} | {row['responses']} | {percent(row['ratio'])} "
            f"({row['positive']} of {row['responses']}) |")
    target = row.get("target")
    gap = f" ({points(row['ratio'], target)})" if target is not None and row["ratio"] is not None else ""
    line += f" {percent(target) + gap if target is not None else '-'} |"
    bench = row.get("benchmark")
    return line + (f" {percent(bench['value'])} ({bench['label']}) |" if bench else " - |")


def _satisfaction(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["## Customer satisfaction", "", "| survey | question | answers | satisfied | target | benchmark |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [_satisfaction_line(r) for r in rows] + [""]
    return lines + _by_respondent(rows)


def _by_respondent(rows: list[dict[str, Any]]) -> list[str]:
    """Each question's result per respondent group, as seed 000 reports users and carers apart."""
    out = []
    for row in rows:
        groups = row.get("by_respondent_type") or {}
        if len(groups) > 1:
            parts = [f"{_label(g).lower()} {percent(v['ratio'])} ({v['positive']} of {v['responses']})"
                     for g, v in groups.items()]
            out.append(f"- {row['question']} ({row['text']}): " + "; ".join(parts))
    return out + [""] if out else []


def render_markdown(report: dict[str, Any], counts: Mapping[str, tuple[int, int]] | None = None) -> str:
    """The report for people: complaints, themes, compliments, learning and satisfaction; `counts` gives the
    timeliness rates' counts and denominators (`report_html.rate_counts`)."""
    p = report["period"]
    lines = [f"# Complaints and compliments report, {p['from']} to {p['to']}", ""]
    lines += _complaints(report["complaints"], counts or {}) + _themes(report.get("themes", {}))
    lines += _compliments(report["compliments"]) + _learning(report["learning"], counts or {})
    lines += _actions(report.get("learning_actions", {}))
    lines += _satisfaction(report.get("satisfaction", []))
    return "\n".join(lines).rstrip() + "\n"
