"""Reading the contract's times: RFC 3339 with an offset (`Z` accepted)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (raises ValueError when it is not one)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def event_time(body: Mapping[str, Any]) -> datetime:
    """When the event happened in the world: its CloudEvents `time`."""
    return parse_time(str(body["time"]))
