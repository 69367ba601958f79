"""Deadline timers: each deadline warns and breaches at most once per due, in time order, deterministically."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.deadlines import timers

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
DUE = datetime(2026, 3, 9, 23, 59, 59, tzinfo=UTC)
WARN = datetime(2026, 3, 6, 23, 59, 59, tzinfo=UTC)


def _deadline() -> timers.Deadline:
    return timers.schedule("stage1", "respond", 1, DUE, WARN, T0)


def test_warning_then_breach_each_once_whatever_the_ticks() -> None:
    d = _deadline()
    d, fired = timers.fire(d, WARN - timedelta(seconds=1))
    assert fired == []
    d, fired = timers.fire(d, WARN)
    assert fired == [("warning", WARN)]
    d, fired = timers.fire(d, WARN + timedelta(hours=1))
    assert fired == []
    d, fired = timers.fire(d, DUE + timedelta(days=30))
    assert fired == [("breach", DUE)]
    assert timers.fire(d, DUE + timedelta(days=60))[1] == [] and d.next_fire_at() is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20 * 24 * 3600), min_size=1, max_size=30))
def test_any_sequence_of_ticks_fires_warning_and_breach_exactly_once(offsets: list[int]) -> None:
    d, all_fired = _deadline(), []
    for offset in sorted(offsets):
        d, fired = timers.fire(d, T0 + timedelta(seconds=offset))
        all_fired.extend(fired)
    late = T0 + timedelta(seconds=max(offsets))
    expected = [("warning", WARN)] * (late >= WARN) + [("breach", DUE)] * (late >= DUE)
    assert all_fired == expected


def test_met_and_cancelled_deadlines_never_fire() -> None:
    met = timers.meet(_deadline(), DUE + timedelta(seconds=1))
    assert met.late is True and timers.fire(met, DUE + timedelta(days=9))[1] == []
    on_time = timers.meet(_deadline(), DUE)
    assert on_time.late is False
    assert timers.fire(timers.cancel(_deadline()), DUE + timedelta(days=9))[1] == []


def test_a_warning_already_past_when_scheduled_is_skipped() -> None:
    d = timers.schedule("stage1", "respond", 1, DUE, WARN, WARN + timedelta(minutes=1))
    assert timers.fire(d, DUE)[1] == [("breach", DUE)]


def test_moving_the_due_instant_lets_the_new_target_warn_and_breach_again() -> None:
    d, _ = timers.fire(_deadline(), DUE)
    new_due = DUE + timedelta(days=7)
    moved = timers.move(d, new_due, new_due - timedelta(days=1), DUE + timedelta(hours=1))
    assert moved.breached is False
    assert [f for f, _ in timers.fire(moved, new_due)[1]] == ["warning", "breach"]


def test_derived_ids_are_deterministic_and_depend_on_every_part() -> None:
    a = timers.derived_event("s", "deadline.breached", "case-1", DUE, {}, "stage1:1:respond", DUE)
    b = timers.derived_event("s", "deadline.breached", "case-1", DUE, {}, "stage1:1:respond", DUE)
    c = timers.derived_event("s", "deadline.breached", "case-1", DUE, {}, "stage1:2:respond", DUE)
    assert a == b and a["id"] != c["id"] and a["id"].startswith("cf-")


def test_a_deadline_event_is_the_derived_event_of_its_key_and_due() -> None:
    d, at = _deadline(), WARN
    made = timers.deadline_event("s", "deadline.warning", "case-1", at, d, late=False)
    assert made == timers.derived_event("s", "deadline.warning", "case-1", at, timers.deadline_data(d, late=False),
                                        d.key, d.due)
    own = timers.deadline_event("s", "learning.stage.overdue", "case-1", at, d, {"due": "x"})
    assert own["data"] == {"due": "x"} and own["id"] == timers.derived_id("case-1", "learning.stage.overdue", d.key,
                                                                          d.due)


def test_json_round_trip() -> None:
    d = timers.meet(_deadline(), DUE)
    assert timers.from_json(timers.to_json(d)) == d
