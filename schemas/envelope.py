"""The CloudEvents 1.0 envelope (contract section 1), structured JSON mode."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from schemas.times import Rfc3339DateTime

# Bounds keep one record from exhausting memory; upstream ids and sources are short.
MAX_ID = 200
MAX_SOURCE = 200
MAX_SUBJECT = 200
MAX_TYPE = 100
# CloudEvents 1.0: an extension attribute is a scalar.
EXTENSION_VALUE: dict[str, JsonValue] = {"type": ["string", "number", "boolean", "null"]}


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope; `data` is checked separately against the type's payload."""

    # Extension attributes are scalars (CloudEvents 1.0), as the published schemas say; non-finite
    # numbers among them are kept as such (not written as null), so that intake can refuse them.
    model_config = ConfigDict(extra="allow", frozen=True, ser_json_inf_nan="constants",
                              json_schema_extra={"additionalProperties": EXTENSION_VALUE})

    specversion: Literal["1.0"]
    id: str = Field(min_length=1, max_length=MAX_ID)
    source: str = Field(min_length=1, max_length=MAX_SOURCE)
    type: str = Field(min_length=1, max_length=MAX_TYPE)
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT, pattern=r"^[^\s]+$")
    time: Rfc3339DateTime
    datacontenttype: Literal["application/json"] | None = None
    data: dict[str, Any]

    def event_time(self) -> datetime:
        """The time the event happened in the world (never the processing time)."""
        return self.time
