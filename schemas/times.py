"""Reading the contract's times: RFC 3339 with an offset (`Z` accepted)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, WithJsonSchema

# RFC 3339 section 5.6 (its ABNF letters are case-insensitive): the published schemas' date-time and date.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (raises ValueError when it is not one)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def event_time(body: Mapping[str, Any]) -> datetime:
    """When the event happened in the world: its CloudEvents `time`."""
    return parse_time(str(body["time"]))


def _rfc3339_date_time(value: Any) -> Any:
    """JSON gives a time as RFC 3339 text; numbers, digits and other ISO 8601 forms are not coerced."""
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time text with seconds and an offset, e.g. 2026-03-02T09:15:00Z")


def _rfc3339_full_date(value: Any) -> Any:
    """JSON gives a date as RFC 3339 full-date text (YYYY-MM-DD); numbers are not coerced."""
    if isinstance(value, date) or (isinstance(value, str) and _FULL_DATE.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 date text, e.g. 2026-03-02")


# The published form of each: JSON Schema's `format` (which many validators only annotate) plus the
# same rule as a pattern, so that every standard validator refuses what intake refuses. A `$` before
# a final newline matches in some engines (Python, Java), hence the `not` on line breaks.
SINGLE_LINE: dict[str, Any] = {"not": {"pattern": "[\n\r]"}}
DATE_TIME_SCHEMA: dict[str, Any] = {
    "type": "string", "format": "date-time", **SINGLE_LINE,
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
}
# An event's own `time` (the envelope's) lies in the years 1900 to 2999 as written (intake's rule).
_EVENT_YEAR = "^(19|2[0-9])[0-9]{2}" + DATE_TIME_SCHEMA["pattern"].removeprefix("^[0-9]{4}")
EVENT_TIME_SCHEMA: dict[str, Any] = {**DATE_TIME_SCHEMA, "pattern": _EVENT_YEAR}
FULL_DATE_SCHEMA: dict[str, Any] = {"type": "string", "format": "date", **SINGLE_LINE,
                                    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}

# What the contract calls a time (with offset) and a date; Python objects pass, as services build events from them.
Rfc3339DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_date_time), WithJsonSchema(DATE_TIME_SCHEMA)]
EventTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_date_time), WithJsonSchema(EVENT_TIME_SCHEMA)]
Rfc3339Date = Annotated[date, BeforeValidator(_rfc3339_full_date), WithJsonSchema(FULL_DATE_SCHEMA)]
