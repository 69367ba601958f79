"""The CloudEvents 1.0 envelope (contract section 1), structured JSON mode."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, WithJsonSchema

from schemas.times import SINGLE_LINE, EventTime

# Bounds keep one record from exhausting memory; upstream ids and sources are short.
MAX_ID = 200
MAX_SOURCE = 200
MAX_SUBJECT = 200
MAX_TYPE = 100
# CloudEvents 1.0: an extension attribute is a scalar.
EXTENSION_VALUE: dict[str, JsonValue] = {"type": ["string", "number", "boolean", "null"]}
# Contract 1.1: `application/json`, with or without parameters (`application/json; charset=utf-8`).
JSON_MEDIA_TYPE = "application/json"
_MEDIA_TYPE = re.compile(r"application/json([ \t]*;[^\x00-\x1f\x7f]*)?", re.ASCII)
MEDIA_TYPE_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^application/json([ \t]*;|$)",
                                     "not": {"pattern": "[\u0000-\u001f\u007f]"}}
# White space, spelled out, as regex engines differ on `\s`.
WHITE_SPACE = "\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The subject is a key and a label: no white space.
SUBJECT_PATTERN = f"^[^{WHITE_SPACE}]+$"


def _json_media_type(value: str) -> str:
    """The media type without its parameters: one event reads the same whichever way its type was written."""
    if not _MEDIA_TYPE.fullmatch(value):
        raise ValueError("must be application/json, optionally with parameters (application/json; charset=utf-8)")
    return JSON_MEDIA_TYPE


DataContentType = Annotated[str, AfterValidator(_json_media_type), WithJsonSchema(MEDIA_TYPE_SCHEMA)]


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
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT, pattern=SUBJECT_PATTERN, json_schema_extra=SINGLE_LINE)
    time: EventTime
    datacontenttype: DataContentType | None = None
    data: dict[str, Any]

    def event_time(self) -> datetime:
        """The time the event happened in the world (never the processing time)."""
        return self.time
