"""Patterns in complaints and learning (seed 000 §4.3.4): themes and learning actions by service area.

A pure fold over history bodies in history order, for the period report (or any reader of the
history); the same figures are live as `casefeedback_complaint_themes_total` and
`casefeedback_learning_actions_total`. Service areas and themes are folded by the configured label
values (`LabelValues`), exactly as the live counters fold them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.common.figures import OTHER, LabelValues


@dataclass
class Patterns:
    """Complaint themes and learning actions (by level, opened and completed) per service area."""

    labels: LabelValues
    areas: dict[str, str] = field(default_factory=dict)  # case -> service area
    levels: dict[tuple[str, str], str] = field(default_factory=dict)  # (case, action) -> level
    themes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    actions: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, body: dict[str, Any]) -> None:
        """Count one history event (others are ignored)."""
        type_, subject, data = body.get("type"), str(body.get("subject")), body.get("data") or {}
        if type_ == "complaint.received":
            area = self.labels.service_area(data.get("service_area"))
            self.areas.setdefault(subject, area)
            self.themes[area].update(self.labels.themes_of(data.get("themes")))
        elif type_ == "learning.action.added":
            key, level = (subject, str(data.get("action_id"))), str(data.get("level"))
            if key not in self.levels:
                self.levels[key] = level
                self.actions[self.areas.get(subject, OTHER)][f"{level}.opened"] += 1
        elif type_ == "learning.action.completed":
            known = self.levels.get((subject, str(data.get("action_id"))))
            if known is not None:
                self.actions[self.areas.get(subject, OTHER)][f"{known}.completed"] += 1

    def result(self) -> dict[str, Any]:
        """`{"themes": {area: {theme: n}}, "learning_actions": {area: {"level.state": n}}}`, sorted."""
        return {"themes": {a: dict(sorted(c.items())) for a, c in sorted(self.themes.items()) if c},
                "learning_actions": {a: dict(sorted(c.items())) for a, c in sorted(self.actions.items()) if c}}


def patterns(bodies: Iterable[dict[str, Any]], labels: LabelValues) -> dict[str, Any]:
    """Themes and learning actions by service area over history bodies (in history order)."""
    out = Patterns(labels)
    for body in bodies:
        out.add(body)
    return out.result()
