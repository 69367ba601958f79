"""Retention: which closed cases have been kept for their configured period, due for erasure.

Rules are data (`retention.yaml`): years after closure by default, per procedure, per service area
(the most specific wins). Pure but for `due_cases`, which reads the history's closures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from services.audit.erasure import ERASURE_TYPE
from services.common.errors import ConfigurationError

DEFAULT_FILE = Path(__file__).with_name("retention.yaml")


@dataclass(frozen=True)
class RetentionRules:
    """Years to keep a case after its closure: by service area, else by procedure, else the default."""

    default_years: int = 6
    procedures: Mapping[str, int] = field(default_factory=dict)
    service_areas: Mapping[str, int] = field(default_factory=dict)

    def years(self, procedure: str, service_area: str) -> int:
        """The period that applies to a case of this procedure and service area."""
        return self.service_areas.get(service_area, self.procedures.get(procedure, self.default_years))


@dataclass(frozen=True)
class DueCase:
    """A case whose retention period has run out."""

    subject: str
    procedure: str
    service_area: str
    closed: date
    erase_from: date


def _years(where: str, rule: Any) -> int:
    years = rule.get("years_after_closure") if isinstance(rule, dict) else None
    if not isinstance(years, int) or isinstance(years, bool) or years < 0:
        raise ConfigurationError(f"retention file: {where} must be {{years_after_closure: N}} with N a whole number "
                                 f"of years, got {rule!r}")
    return years


def parse_rules(data: Any) -> RetentionRules:
    """Rules from a retention file's content (errors name the entry that is wrong)."""
    if not isinstance(data, dict) or "default" not in data:
        raise ConfigurationError("retention file: needs a 'default: {years_after_closure: N}' entry")
    groups = {name: data.get(name) or {} for name in ("procedures", "service_areas")}
    return RetentionRules(_years("default", data["default"]),
                          *({key: _years(f"{name}.{key}", rule) for key, rule in groups[name].items()}
                            for name in ("procedures", "service_areas")))


def load_rules(path: Path | None = None) -> RetentionRules:
    """The retention rules of `path` (the built-in file when None)."""
    where = path or DEFAULT_FILE
    try:
        return parse_rules(yaml.safe_load(where.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"retention file {where}: cannot read it: {exc}") from None


def add_years(day: date, years: int) -> date:
    """The same day `years` later (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def is_due(rules: RetentionRules, procedure: str, service_area: str, closed: date, today: date) -> date | None:
    """The day erasure falls due when that is today or earlier; None while the case is still kept."""
    erase_from = add_years(closed, rules.years(procedure, service_area))
    return erase_from if erase_from <= today else None


CLOSURES = """
SELECT r.subject, r.body::text AS received, min(c.time) AS closed
FROM events r JOIN events c ON c.subject = r.subject AND c.type = any('{complaint.closed,complaint.withdrawn}')
WHERE r.type = 'complaint.received'
  AND NOT EXISTS (SELECT 1 FROM events x WHERE x.subject = r.subject AND x.type = $1)
GROUP BY r.subject, r.body::text ORDER BY closed, r.subject
"""


async def due_cases(conn: asyncpg.Connection, rules: RetentionRules, default_procedure: str,
                    today: date) -> list[DueCase]:
    """Closed cases, not erased yet, whose retention period has run out by `today`, earliest closure first."""
    due = []
    for r in await conn.fetch(CLOSURES, ERASURE_TYPE):
        data = json.loads(r["received"])["data"]
        procedure, area = str(data.get("procedure") or default_procedure), str(data["service_area"])
        closed = r["closed"].date() if isinstance(r["closed"], datetime) else r["closed"]
        erase_from = is_due(rules, procedure, area, closed, today)
        if erase_from is not None:
            due.append(DueCase(r["subject"], procedure, area, closed, erase_from))
    return due
