"""Calendars: counting working days (UK public holidays by nation) or calendar days, and due instants.

How days are counted (documented here and stated in each procedure file):

- `day_one: next_day_after_receipt` (the SPSO rule): day 1 is the first counting day strictly
  after the local date of receipt; with working days, a complaint received on a Saturday has
  Monday as day 1, and one received on a working day at 09:00 does not count that day.
- `day_of_receipt`: day 1 is the date of receipt itself when it is a counting day.
- A working day is Monday to Friday and not a public holiday of the calendar's UK nation
  (`holidays` package, subdivisions SCT, ENG, WLS, NIR).
- A period in calendar months (`respond_months`) ends on the same day of the month that many months
  after the local date of receipt (the month's last day where it is shorter: 31 August + 6 months
  is 28 or 29 February), whatever the day-one rule and whether or not that day is a working day.
- A stopped clock (suspension) moves a deadline later by the counting days it was stopped: the
  counting days after the day it stopped, up to and including the day it restarted.
- A deadline falls due at the **end of its last permitted day**, 23:59:59 local time in the
  calendar's time zone (Europe/London), expressed with its UTC offset (GMT or BST). An act at
  or before that instant is on time; `late` means after it.
"""

from __future__ import annotations

import calendar as gregorian
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

# The dates deadlines are counted for. Before 1900 nothing here applies (and Europe/London kept local mean
# time until 1847, an offset RFC 3339 cannot write); 9000 leaves room below the last date Python can
# represent for any count of days a procedure allows, so counting never overflows.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(9000, 12, 31)

CalendarKind = Literal["working_days", "calendar_days"]
DayOne = Literal["next_day_after_receipt", "day_of_receipt"]
TimeUnit = Literal["days", "months"]
REGIONS = ("SCT", "ENG", "WLS", "NIR")
END_OF_DAY = time(23, 59, 59)
ONE_DAY = timedelta(days=1)


@lru_cache(maxsize=8)
def _public_holidays(region: str) -> holidays.HolidayBase:
    return holidays.country_holidays("GB", subdiv=region)


def countable(day: date) -> bool:
    """Whether deadlines can be counted from or to `day` (between FIRST_DAY and LAST_DAY)."""
    return FIRST_DAY <= day <= LAST_DAY


def uncountable(what: str, day: date) -> str | None:
    """Why `what`, on `day`, cannot start or end a deadline; None when it can."""
    if countable(day):
        return None
    return f"{what} on {day}: deadlines are counted only for dates from {FIRST_DAY} to {LAST_DAY}"


@lru_cache(maxsize=65536)
def is_working_day(day: date, region: str) -> bool:
    """Monday to Friday and not a public holiday in the UK nation `region` (cached: deadlines reuse days)."""
    return day.weekday() < 5 and day not in _public_holidays(region)


# Working-day sums are cached: every case received on one day gets the same answer. Keys are (date, n,
# region); 16,384 covers about ten years of days for each procedure's few (n, region) pairs (~3 MB at most).
@lru_cache(maxsize=16384)
def add_working_days(start: date, n: int, region: str) -> date:
    """The n-th working day strictly after `start` (`start` itself when n is 0)."""
    day, left = start, n
    while left > 0:
        day += ONE_DAY
        if is_working_day(day, region):
            left -= 1
    return day


@lru_cache(maxsize=16384)
def subtract_working_days(end: date, n: int, region: str) -> date:
    """The n-th working day strictly before `end` (`end` itself when n is 0)."""
    day, left = end, n
    while left > 0:
        day -= ONE_DAY
        if is_working_day(day, region):
            left -= 1
    return day


def add_months(start: date, n: int) -> date:
    """The same day of the month n months after `start` (the month's last day where that month is shorter)."""
    month0 = start.month - 1 + n
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(start.day, gregorian.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Calendar:
    """A way of counting days towards a deadline, in a time zone."""

    kind: CalendarKind = "working_days"
    region: str | None = "SCT"
    day_one: DayOne = "next_day_after_receipt"
    timezone: str = "Europe/London"

    @cached_property
    def zone(self) -> ZoneInfo:
        """The calendar's time zone (looked up once per calendar)."""
        return ZoneInfo(self.timezone)

    def local_date(self, instant: datetime) -> date:
        """The calendar date of `instant` in the calendar's time zone."""
        return instant.astimezone(self.zone).date()

    def end_of(self, day: date) -> datetime:
        """The last second of `day` in the calendar's time zone, with its offset."""
        return datetime.combine(day, END_OF_DAY, tzinfo=self.zone)

    def add_days(self, start: date, n: int) -> date:
        """The n-th counting day after `start` under this calendar's day-one rule."""
        if self.day_one == "day_of_receipt" and n > 0:
            start -= ONE_DAY
        if self.kind == "calendar_days":
            return start + timedelta(days=n)
        assert self.region is not None
        return add_working_days(start, n, self.region)

    def add_period(self, start: date, n: int, unit: TimeUnit) -> date:
        """The last day of a period of n counting days (day-one rule applied) or n calendar months."""
        return add_months(start, n) if unit == "months" else self.add_days(start, n)

    def shift(self, day: date, n: int) -> date:
        """The n-th counting day after `day` itself (no day-one rule: `day` is already a counted day)."""
        if self.kind == "calendar_days":
            return day + timedelta(days=n)
        assert self.region is not None
        return add_working_days(day, n, self.region)

    def days_between(self, start: date, end: date) -> int:
        """Counting days after `start` up to and including `end` (0 when `end` is not after `start`)."""
        if end <= start:
            return 0
        if self.kind == "calendar_days":
            return (end - start).days
        assert self.region is not None
        region = self.region
        return sum(is_working_day(start + timedelta(days=i), region) for i in range(1, (end - start).days + 1))

    def subtract_days(self, end: date, n: int) -> date:
        """The n-th counting day before `end`."""
        if self.kind == "calendar_days":
            return end - timedelta(days=n)
        assert self.region is not None
        return subtract_working_days(end, n, self.region)

    def due_after(self, received: datetime, n: int) -> datetime:
        """When a deadline of `n` days counted from `received` falls due (end of its last day)."""
        return self.end_of(self.add_days(self.local_date(received), n))

    def warning_before(self, due: datetime, lead: int) -> datetime | None:
        """When to warn `lead` counting days before `due` (the end of that day); None for no warning."""
        if lead <= 0:
            return None
        return self.end_of(self.subtract_days(self.local_date(due), lead))

    def deadline_after(self, received: datetime, n: int, lead: int,
                       unit: TimeUnit = "days") -> tuple[datetime, datetime | None]:
        """`due_after(received, n)` (or n months) and its `warning_before(due, lead)`, worked out once per day."""
        return _deadline_on(self, self.local_date(received), n, lead, unit)


# Every case received on one local day gets the same due and warning instants. Keys are (calendar, day,
# n, lead, unit): 4,096 covers years of days for the few (n, lead) pairs of the loaded procedures.
@lru_cache(maxsize=4096)
def _deadline_on(calendar: Calendar, day: date, n: int, lead: int,
                 unit: TimeUnit = "days") -> tuple[datetime, datetime | None]:
    due = calendar.end_of(calendar.add_period(day, n, unit))
    return due, calendar.warning_before(due, lead)
