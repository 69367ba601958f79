"""Argument types the commands share, with messages that say what was expected."""

from __future__ import annotations

import argparse
from datetime import date, datetime

from schemas.times import parse_time


def day(value: str) -> date:
    """A calendar date like 2011-12-31."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2011-12-31, got {value!r}") from None


def instant(value: str) -> datetime:
    """An RFC 3339 time with its UTC offset, like 2012-01-15T09:00:00+00:00."""
    try:
        moment = parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time like 2012-01-15T09:00:00+00:00, got {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset; add one, e.g. +00:00")
    return moment
