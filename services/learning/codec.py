"""Learning's state as JSON (the `learning_cases.state` column) and back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.cases.story import Act, Case
from services.deadlines import timers
from services.learning.domain import Action, CaseLearning, LearningStage


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _stage(stage: LearningStage) -> dict[str, Any]:
    return {"deadline": timers.to_json(stage.deadline), "opened": stage.opened.isoformat(),
            "actions": [[a.action_id, a.level, a.completed] for a in stage.actions],
            "submitted": stage.submitted.isoformat() if stage.submitted else None,
            "incomplete_actions": stage.incomplete_actions}


def _unstage(data: dict[str, Any]) -> LearningStage:
    opened = _time(data["opened"])
    assert opened is not None
    return LearningStage(timers.from_json(data["deadline"]), opened,
                         tuple(Action(a, lvl, bool(done)) for a, lvl, done in data["actions"]),
                         _time(data["submitted"]), data["incomplete_actions"])


def encode(state: CaseLearning) -> dict[str, Any]:
    """A learning state as JSON-ready data."""
    out = {"subject": state.subject, "procedure": state.procedure, "service_area": state.service_area,
           "closed": state.closed, "stages": [_stage(s) for s in state.stages], "held": list(state.held),
           "acts": [a.to_json() for a in state.case.acts]}
    if state.lateness:  # only for a source declared late: every other stored state stays as it was
        out["lateness_s"] = state.lateness.total_seconds()
    return out


def decode(data: dict[str, Any]) -> CaseLearning:
    """The inverse of `encode`."""
    return CaseLearning(data["subject"], data["procedure"], data["service_area"], bool(data["closed"]),
                        tuple(_unstage(s) for s in data["stages"]), tuple(data["held"]),
                        Case(tuple(Act.from_json(a) for a in data.get("acts", ()))),  # folded on first use
                        timedelta(seconds=float(data.get("lateness_s") or 0)))
