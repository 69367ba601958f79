"""Escalation's state as JSON (what the `escalation_cases.state` column holds) and back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.cases.story import Act, Case
from services.deadlines import timers
from services.escalation.domain import CaseState


def encode(state: CaseState) -> dict[str, Any]:
    """A case state as JSON-ready data."""
    return {"subject": state.subject, "procedure": state.procedure, "service_area": state.service_area,
            "stage": state.stage, "visit": state.visit, "open": state.open, "started": state.started.isoformat(),
            "outcome": state.outcome, "deadlines": [timers.to_json(d) for d in state.deadlines],
            "suspended": state.suspended.isoformat() if state.suspended is not None else None,
            "status": state.status, "acts": [a.to_json() for a in state.case.acts]}


def decode(data: dict[str, Any]) -> CaseState:
    """The inverse of `encode`."""
    return CaseState(data["subject"], data["procedure"], data["service_area"], data["stage"], int(data["visit"]),
                     bool(data["open"]), datetime.fromisoformat(data["started"]),
                     tuple(timers.from_json(d) for d in data["deadlines"]), data.get("outcome"),
                     datetime.fromisoformat(data["suspended"]) if data.get("suspended") else None,
                     Case(tuple(Act.from_json(a) for a in data.get("acts", ()))))  # folded on first use
