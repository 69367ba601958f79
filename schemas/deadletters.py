"""The dead-letter record (contract section 5): what `feedback.deadletter` carries, as a model for the schemas."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

# `internal` (contract 1.2): a service that follows the history refused one of its events, a fault of that
# service (the history's acts are judged once, at intake; an alert rule reports every one).
Reason = Literal["not_json", "not_cloudevent", "unknown_type", "invalid_data", "out_of_order", "too_large",
                 "not_allowed", "inconsistent", "wrong_topic", "internal"]


class DeadLetter(BaseModel):
    """One refused record: why, where it was, and what it held (headers keep a binary-mode event's attributes)."""

    model_config = ConfigDict(extra="allow")

    reason: Reason
    detail: str
    topic: str
    partition: int | None
    offset: int | None
    key: str | None
    value: str | None
    value_encoding: Literal["base64"] | None = None
    value_truncated: bool | None = None
    value_sha256: str | None = None
    key_truncated: bool | None = None
    headers: list[tuple[str, str | None]] | None = None
    headers_encoding: Literal["base64"] | None = None
    headers_truncated: bool | None = None
