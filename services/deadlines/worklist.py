"""How far a deadline is, in its procedure's own counting days: what `cases` and `history` print.

Counting uses the case's procedure calendar (working days of its UK nation, or calendar days), from the
local date of `now` in the calendar's time zone. A deadline falls due at the end of its last day, so on
that day it is "due today"; N counting days later it is "overdue by N"; before it, "N left". Pure: `now`
is an argument.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

from services.deadlines.calendar import ONE_DAY, Calendar, is_working_day


class Distance(NamedTuple):
    """Where `now` stands against a due instant: overdue or not, and by or within how many counting days."""

    overdue: bool
    days: int
    unit: str  # "working day" or "day"

    def text(self) -> str:
        """`due today`, `3 working days left`, `overdue by 1 working day`."""
        if not self.overdue and self.days == 0:
            return "due today"
        if self.overdue and self.days == 0:  # past the end of its day, and no counting day since (a weekend)
            return f"overdue (by less than a {self.unit})"
        unit = self.unit if self.days == 1 else f"{self.unit}s"
        return f"overdue by {self.days} {unit}" if self.overdue else f"{self.days} {unit} left"


def counting_days_after(calendar: Calendar, start: date, end: date) -> int:
    """Counting days d with start < d <= end (0 when end is not after start)."""
    if end <= start:
        return 0
    if calendar.kind == "calendar_days" or calendar.region is None:
        return (end - start).days
    days, day = 0, start
    while day < end:
        day += ONE_DAY
        days += is_working_day(day, calendar.region)
    return days


def distance(calendar: Calendar, due: datetime, now: datetime) -> Distance:
    """How `now` stands against `due`, counted in `calendar`."""
    unit = "working day" if calendar.kind == "working_days" else "day"
    today, due_day = calendar.local_date(now), calendar.local_date(due)
    if now > due:
        return Distance(True, counting_days_after(calendar, due_day, today), unit)
    return Distance(False, counting_days_after(calendar, today, due_day), unit)
