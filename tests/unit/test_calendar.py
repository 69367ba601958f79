"""Calendars: working days skip weekends and the nation's public holidays; counting is monotonic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.deadlines.calendar import Calendar, add_working_days, is_working_day, subtract_working_days

regions = st.sampled_from(["SCT", "ENG", "WLS", "NIR"])
days = st.dates(min_value=date(2005, 1, 1), max_value=date(2035, 12, 31))
counts = st.integers(min_value=0, max_value=80)


@settings(max_examples=300, deadline=None)
@given(days, st.integers(min_value=1, max_value=80), regions)
def test_adding_working_days_never_lands_on_a_weekend_or_holiday(start: date, n: int, region: str) -> None:
    end = add_working_days(start, n, region)
    assert end.weekday() < 5 and is_working_day(end, region)
    assert end > start


@settings(max_examples=300, deadline=None)
@given(days, counts, counts, regions)
def test_adding_working_days_is_monotonic_in_n(start: date, a: int, b: int, region: str) -> None:
    low, high = sorted((a, b))
    assert add_working_days(start, low, region) <= add_working_days(start, high, region)
    if low < high:
        assert add_working_days(start, low, region) < add_working_days(start, high, region)


@settings(max_examples=200, deadline=None)
@given(days, days, st.integers(min_value=1, max_value=40), regions)
def test_adding_working_days_is_monotonic_in_the_start(a: date, b: date, n: int, region: str) -> None:
    early, late = sorted((a, b))
    assert add_working_days(early, n, region) <= add_working_days(late, n, region)


@settings(max_examples=200, deadline=None)
@given(days, st.integers(min_value=1, max_value=40), regions)
def test_exactly_n_working_days_lie_between_start_and_result(start: date, n: int, region: str) -> None:
    end = add_working_days(start, n, region)
    between = [start + timedelta(days=i) for i in range(1, (end - start).days + 1)]
    assert sum(is_working_day(d, region) for d in between) == n
    assert subtract_working_days(end, n, region) <= start


def test_scottish_and_english_easter_differ() -> None:
    # Good Friday 3 April 2026 is a holiday everywhere; Easter Monday 6 April not in Scotland.
    assert not is_working_day(date(2026, 4, 3), "SCT")
    assert is_working_day(date(2026, 4, 6), "SCT")
    assert not is_working_day(date(2026, 4, 6), "ENG")
    # St Andrew's Day (substitute) and 2 January are Scottish holidays only.
    assert not is_working_day(date(2026, 1, 2), "SCT") and is_working_day(date(2026, 1, 2), "ENG")


def test_spso_day_one_is_the_next_working_day_and_due_is_end_of_day_london() -> None:
    cal = Calendar("working_days", "SCT")
    received = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)  # a Monday
    assert cal.due_after(received, 5).isoformat() == "2026-03-09T23:59:59+00:00"
    # Saturday receipt: day 1 is Monday.
    assert cal.add_days(date(2026, 3, 7), 1) == date(2026, 3, 9)
    # Learning stage closed 1 April 2026: 20 Scottish working days, due in BST.
    assert cal.due_after(datetime(2026, 4, 1, 16, tzinfo=UTC), 20).isoformat() == "2026-04-30T23:59:59+01:00"


def test_late_evening_utc_counts_from_the_london_date() -> None:
    cal = Calendar("calendar_days", None)
    # 23:30 UTC on 30 June is already 1 July in London (BST).
    assert cal.due_after(datetime(2026, 6, 30, 23, 30, tzinfo=UTC), 1).date() == date(2026, 7, 2)


def test_day_of_receipt_counts_the_receipt_day_when_it_is_a_counting_day() -> None:
    cal = Calendar("working_days", "ENG", day_one="day_of_receipt")
    assert cal.add_days(date(2026, 3, 2), 1) == date(2026, 3, 2)
    assert cal.add_days(date(2026, 3, 7), 1) == date(2026, 3, 9)


def test_warning_is_lead_counting_days_before_due() -> None:
    cal = Calendar("working_days", "SCT")
    due = cal.end_of(date(2026, 3, 9))  # Monday
    assert cal.warning_before(due, 1) == cal.end_of(date(2026, 3, 6))  # the Friday before
    assert cal.warning_before(due, 0) is None


CALENDARS = [Calendar(), Calendar("calendar_days", None), Calendar(day_one="day_of_receipt", region="ENG")]


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2005, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)),
       st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=5), st.sampled_from(CALENDARS))
def test_deadline_after_gives_the_due_instant_and_its_warning(received: datetime, n: int, lead: int,
                                                              cal: Calendar) -> None:
    due, warn_at = cal.deadline_after(received, n, lead)
    assert due.isoformat() == cal.due_after(received, n).isoformat()
    expected = cal.warning_before(due, lead)
    assert (warn_at.isoformat() if warn_at else None) == (expected.isoformat() if expected else None)


def test_deadlines_are_counted_only_between_1900_and_9000() -> None:
    from datetime import date

    from services.deadlines.calendar import countable, uncountable

    assert countable(date(1900, 1, 1)) and countable(date(9000, 12, 31))
    assert not countable(date(1, 1, 1)) and not countable(date(9999, 12, 31))
    assert uncountable("x", date(2026, 3, 2)) is None
    assert uncountable("x", date(1, 1, 1)) == "x on 0001-01-01: deadlines are counted only for dates from " \
                                               "1900-01-01 to 9000-12-31"
