"""Every figure shown in more than one output, defined once: the metrics service, the period report,
replay and the dashboards (`deploy/grafana/build_dashboards.py`) all take them from here.

Pure: the standard library and the contract's models only. A rate is always formed by summing a
numerator and a denominator (so PromQL can do the same across workers), never by averaging rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any, NamedTuple

from schemas.payloads import scale_key

OTHER = "other"

# Complaint outcomes (contract section 3); the upheld rate is upheld over decided (contract section 9).
OUTCOMES = ("upheld", "partially_upheld", "not_upheld", "resolved")
UPHELD = ("upheld",)
DECIDED = OUTCOMES
ONGOING = "ongoing"  # a complaint with no outcome (yet, or again since an escalation)
WITHDRAWN = "withdrawn"  # withdrawn before any outcome of its stage (contract 11.1): not ongoing
LATEST_OUTCOMES = (*OUTCOMES, ONGOING, WITHDRAWN)

# The rolling windows the dashboards show: N whole UTC days ending with today's, so that a window is the
# report's period --from (today - N + 1) --to today.
WINDOW_DAYS = {"30d": 30, "90d": 90, "365d": 365}


@dataclass(frozen=True)
class LabelValues:
    """The bounded sets of label values an operator configures (`services/common/labels.yaml`)."""

    service_areas: tuple[str, ...]
    respondent_types: tuple[str, ...]
    themes: tuple[str, ...]

    def service_area(self, value: Any) -> str:
        """A service area as figures show it: itself when configured, else `other`."""
        return fold(value, self.service_areas)

    def respondent_type(self, value: Any) -> str:
        """A respondent type as figures show it: itself when configured, else `other`."""
        return fold(value, self.respondent_types)

    def themes_of(self, themes: Any) -> frozenset[str]:
        """A complaint's themes as figures count them: each once, unconfigured ones as `other`."""
        if not isinstance(themes, list | tuple):
            return frozenset()
        return frozenset(fold(theme, self.themes) for theme in themes)


def fold(value: Any, allowed: Iterable[str]) -> str:
    """`value` when it is one of `allowed`, else `other`."""
    return value if isinstance(value, str) and value in allowed else OTHER


def rate(numerator: int, denominator: int) -> float | None:
    """A ratio rounded to three places (as the report prints it), or None when nothing was counted."""
    return round(numerator / denominator, 3) if denominator else None


def upheld_rate(outcomes: Mapping[str, int]) -> float | None:
    """Upheld complaints over decided ones (upheld, partially upheld, not upheld, resolved)."""
    return rate(sum(outcomes.get(o, 0) for o in UPHELD), sum(outcomes.get(o, 0) for o in DECIDED))


def latest_outcome(outcome: Any, status: str | None = None) -> str:
    """A complaint's outcome as its latest response left it: `withdrawn` when it was withdrawn without one,
    `ongoing` when it has none (never answered, or escalated since), `other` for a value no contract
    outcome names."""
    if outcome is None:
        return WITHDRAWN if status == WITHDRAWN else ONGOING
    return fold(outcome, OUTCOMES)


def promql_upheld_rate(metric: str, window: str) -> str:
    """The upheld rate in PromQL, the same numerator and denominator as `upheld_rate`; `metric` counts
    complaints received in the window by `latest_outcome` (escalation's `casefeedback_complaints_by_outcome`)."""
    def total(outcomes: tuple[str, ...]) -> str:
        return f'sum({metric}{{window="{window}",outcome=~"{"|".join(outcomes)}"}})'
    return f"{total(UPHELD)} / {total(DECIDED)}"


def promql_ratio(numerator: str, denominator: str, by: str, window: str) -> str:
    """sum(numerator) / sum(denominator) by the given labels in one window (never an average of ratios)."""
    sel = f'{{window="{window}"}}'
    return f"sum by ({by}) ({numerator}{sel}) / sum by ({by}) ({denominator}{sel})"


def window_start(now: datetime, days: int) -> datetime:
    """The first instant of a window of `days` whole UTC days ending with `now`'s day."""
    first = now.astimezone(timezone.utc).date() - timedelta(days=days - 1)
    return datetime.combine(first, time.min, timezone.utc)


def windows_holding(moment: datetime, now: datetime) -> list[str]:
    """The windows (of `WINDOW_DAYS`, ending at `now`) that `moment` falls in."""
    if moment > now:
        return []
    return [name for name, days in WINDOW_DAYS.items() if moment >= window_start(now, days)]


class Settled(NamedTuple):
    """When a deadline counts for timeliness, and whether it was met."""

    at: datetime
    met: bool


def settled(due: datetime, met_at: datetime | None, breached: bool) -> Settled | None:
    """Timeliness, defined once (contract section 9; the report and escalation's timeliness gauges): a
    deadline is met when its act happened on or before its target (`due`: the agreed date where an
    extension was agreed) and then counts when the act happened; one met late, or whose target passed
    unmet (breached), is missed and counts when it fell due. A deadline still running, or ended
    unmet before it fell due (withdrawn, closed, escalated), is not counted (None). A window's rate is
    its met deadlines over those counted in it (`rate`, or `promql_ratio` over the gauges)."""
    if met_at is not None:
        return Settled(met_at, True) if met_at <= due else Settled(due, False)
    return Settled(due, False) if breached else None


def answer_key(answer: Any) -> str:
    """One survey answer as its canonical key (`schemas.payloads.scale_key`: booleans as yes/no, numbers
    by value, text stripped and case-folded); an answer on no scale is `other`."""
    return scale_key(answer) or OTHER


def positive_keys(positive: Any) -> frozenset[str]:
    """The canonical keys of a question's positive answers (strings or JSON numbers); TypeError when they are
    not a list."""
    if not isinstance(positive, list | tuple):
        raise TypeError(f"positive answers must be a list, got {type(positive).__name__}")
    return frozenset(key for key in map(answer_key, positive) if key != OTHER)


def is_positive(answer: Any, positive: frozenset[str]) -> bool:
    """Whether one answer is among a question's positive answers (`positive_keys`)."""
    return answer_key(answer) in positive
