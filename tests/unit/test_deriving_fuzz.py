"""Escalation's and learning's domains over whole generated case stories: never raise, fire at any instant,
store losslessly."""

from __future__ import annotations

import functools
from datetime import datetime
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from services.escalation import codec as escalation_codec
from services.escalation import domain as escalation
from services.learning import codec as learning_codec
from services.learning import domain as learning
from tests.unit.case_stories import BOOK, fold, stored, story, untils

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOMAINS = pytest.mark.parametrize(("domain", "codec", "firings"), [
    (escalation, escalation_codec, {"deadline.warning", "deadline.breached"}),
    (learning, learning_codec, {"deadline.warning", "learning.stage.overdue"}),
], ids=["escalation", "learning"])


def _states(domain: ModuleType, events: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    return fold(functools.partial(domain.decide, book=BOOK), events)


@DOMAINS
@FUZZ
@given(events=story())
def test_no_story_makes_decide_raise(domain: ModuleType, codec: ModuleType, firings: set[str],
                                     events: list[dict[str, Any]]) -> None:
    assert _states(domain, events)[1] == []  # every refusal is one the domain meant, in its own words


@DOMAINS
@FUZZ
@given(events=story(), until=untils())
def test_fire_due_never_raises_whenever_the_tick_runs(domain: ModuleType, codec: ModuleType, firings: set[str],
                                                      events: list[dict[str, Any]], until: datetime) -> None:
    for state in _states(domain, events)[0].values():
        fired, derived = domain.fire_due(state, until)
        assert {e["type"] for e in derived} <= firings
        assert stored(fired, codec) == fired


@DOMAINS
@FUZZ
@given(events=story())
def test_every_state_a_story_leaves_round_trips_through_the_stored_json(
        domain: ModuleType, codec: ModuleType, firings: set[str], events: list[dict[str, Any]]) -> None:
    for state in _states(domain, events)[0].values():
        assert stored(state, codec) == state
