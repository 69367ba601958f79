"""Distances to a deadline in its procedure's counting days, as `cases` and `history` print them."""

from __future__ import annotations

from datetime import UTC, datetime

from services.deadlines.calendar import Calendar
from services.deadlines.worklist import Distance, distance

SCOTLAND = Calendar("working_days", "SCT")
DAYS = Calendar("calendar_days", None)
DUE = datetime(2026, 3, 6, 23, 59, 59, tzinfo=SCOTLAND.zone)  # a Friday


def test_on_its_last_day_a_deadline_is_due_today() -> None:
    assert distance(SCOTLAND, DUE, datetime(2026, 3, 6, 9, tzinfo=UTC)).text() == "due today"


def test_working_days_left_skip_the_weekend() -> None:
    assert distance(SCOTLAND, DUE, datetime(2026, 3, 2, 9, tzinfo=UTC)) == Distance(False, 4, "working day")
    assert distance(SCOTLAND, DUE, datetime(2026, 3, 5, 9, tzinfo=UTC)).text() == "1 working day left"


def test_overdue_counts_working_days_after_the_due_day() -> None:
    assert distance(SCOTLAND, DUE, datetime(2026, 3, 10, 9, tzinfo=UTC)).text() == "overdue by 2 working days"
    assert distance(SCOTLAND, DUE, datetime(2026, 3, 7, 9, tzinfo=UTC)).text() == "overdue (by less than a working day)"


def test_calendar_day_procedures_count_every_day() -> None:
    due = datetime(2026, 3, 6, 23, 59, 59, tzinfo=DAYS.zone)
    assert distance(DAYS, due, datetime(2026, 3, 9, 9, tzinfo=UTC)).text() == "overdue by 3 days"
