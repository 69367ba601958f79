"""The CloudEvents Kafka protocol binding's binary content mode (contract section 1, added in 1.1).

Attributes travel in `ce_`-prefixed record headers, `datacontenttype` in the `content-type` header,
and the record value is `data`. Intake turns such a record into the structured-mode object it stands
for, which is then judged exactly as a structured event: both modes are one and the same event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.registry import Rejection, parse_json

Headers = Sequence[tuple[str, bytes | None]]
CE_PREFIX = "ce_"
CONTENT_TYPE = "content-type"
# The binding marks a structured-mode record with this media type in `content-type`.
STRUCTURED_MEDIA_TYPE = b"application/cloudevents"


def is_binary(headers: Headers) -> bool:
    """Whether a record is in binary content mode: a `ce_specversion` header, and no structured media type."""
    binary = False
    for name, value in headers:
        if name == "ce_specversion":
            binary = True
        elif name.lower() == CONTENT_TYPE and value is not None and value.lower().startswith(STRUCTURED_MEDIA_TYPE):
            return False
    return binary


def size(headers: Headers) -> int:
    """The bytes a record's headers take: each name (as UTF-8) and value."""
    return sum(len(name.encode("utf-8", "surrogatepass")) + len(value or b"") for name, value in headers)


def structured(headers: Headers, value: bytes | None) -> dict[str, Any]:
    """The structured-mode object a binary-mode record stands for (raises Rejection when it cannot be read)."""
    event: dict[str, Any] = {}
    for name, raw in headers:
        attribute = _attribute(name)
        if attribute is None:
            continue
        if attribute in event:
            raise Rejection("not_cloudevent", f"header {name[:50]!r} is given twice; send each attribute once")
        event[attribute] = _text(name, raw)
    if value is None:
        raise Rejection("not_cloudevent", "binary-mode record has no value: in binary mode the value is `data`")
    event["data"] = parse_json(value)
    return event


def _attribute(name: str) -> str | None:
    if name.lower() == CONTENT_TYPE:
        return "datacontenttype"
    if not name.startswith(CE_PREFIX):
        return None
    attribute = name[len(CE_PREFIX):]
    if attribute in ("data", "datacontenttype"):
        raise Rejection("not_cloudevent", f"header {name[:50]!r} is not an attribute in binary mode: `data` is the "
                                          "record value and `datacontenttype` the content-type header")
    return attribute


def _text(name: str, raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejection("not_cloudevent", f"header {name[:50]!r} is not UTF-8 text") from None
