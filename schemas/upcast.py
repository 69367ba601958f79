"""Payload versions and the upcaster chain: every older version of a payload reads as the current one.

An event says its payload version in the CloudEvents attribute `dataschema`
(`urn:casefeedback:schema:<type>:<version>`); an event without it was recorded under contract 1.1,
version 1. `upcast` applies the chain `UPCASTERS[(type, n)]` (version n to n + 1) until the current
version, so replay and every reader see one shape whatever year the history was recorded in.
Upcasters are pure and change nothing a figure depends on without a new contract version.

Intake (`current_data`) reads a new event that says an older version through the same chain in
strict mode: an upcaster then keeps what the sender gave, and the current model judges it, so a new
event is never accepted with something silently dropped (its raw bytes are kept in the history).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from schemas.payloads import is_pseudonymous

Data = dict[str, Any]
Upcaster = Callable[[Data, bool], Data]
SCHEMA_URN = re.compile(r"^urn:casefeedback:schema:(?P<type>[a-z0-9_.]+):(?P<version>[1-9][0-9]*)$")


class UnknownVersion(ValueError):
    """A `dataschema` that names no payload version this code knows (another form, another type, a later version)."""


def _v1_to_v2_complaint_received(data: Data, strict: bool) -> Data:
    """Version 2 of complaint.received checks that `complainant_ref` is pseudonymous (contract: never a name);
    a version 1 reference in history that is not (a name or an address sent by mistake) is not carried
    forward. Strict (a new event): kept, so that the version 2 model refuses it."""
    ref = data.get("complainant_ref")
    if strict or ref is None or (isinstance(ref, str) and (is_pseudonymous(ref) or ref == "[erased]")):
        return data
    return {k: v for k, v in data.items() if k != "complainant_ref"}


# (type, version) -> the upcaster from that version to the next.
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("complaint.received", 1): _v1_to_v2_complaint_received,
}
CURRENT_VERSIONS: dict[str, int] = {"complaint.received": 2}
UPCAST_TYPES = frozenset(t for t, _ in UPCASTERS)


def schema_urn(event_type: str, version: int | None = None) -> str:
    """The `dataschema` of a payload version (the current one when not given)."""
    return f"urn:casefeedback:schema:{event_type}:{version or CURRENT_VERSIONS.get(event_type, 1)}"


def schema_urns(event_type: str) -> list[str]:
    """Every `dataschema` a sender may give for the type: versions 1 to the current one."""
    return [schema_urn(event_type, n) for n in range(1, CURRENT_VERSIONS.get(event_type, 1) + 1)]


def payload_version(body: dict[str, Any]) -> int:
    """The payload version an event says it carries (1 when it says none: contract 1.1 history)."""
    match = SCHEMA_URN.match(str(body.get("dataschema", "")))
    return int(match["version"]) if match and match["type"] == body.get("type") else 1


def upcast(body: dict[str, Any]) -> dict[str, Any]:
    """The event with its payload at the current version of its type (the same dict when it already is)."""
    event_type = str(body.get("type"))
    if event_type not in UPCAST_TYPES:
        return body
    data = _chain(event_type, payload_version(body), body["data"], strict=False)
    return body if data is body["data"] else {**body, "data": data}


def declared_version(event_type: str, dataschema: object) -> int:
    """The payload version a new event's `dataschema` names (the current one when it gives none).

    Raises UnknownVersion for anything but `urn:casefeedback:schema:<its type>:<1 to current>`.
    """
    current = CURRENT_VERSIONS.get(event_type, 1)
    if dataschema is None:
        return current
    match = SCHEMA_URN.fullmatch(dataschema) if isinstance(dataschema, str) else None
    if match is None or match["type"] != event_type or int(match["version"]) > current:
        raise UnknownVersion(f"dataschema {str(dataschema)[:120]!r} is not a payload version of {event_type} known "
                             f"here ({', '.join(schema_urns(event_type))}); send one of those, or none for the "
                             f"current version")
    return int(match["version"])


def current_data(event_type: str, dataschema: object, data: Data) -> Data:
    """A new event's payload read as the current version of its type (strict: nothing the sender gave is dropped).

    Raises UnknownVersion when `dataschema` names no version known here.
    """
    return _chain(event_type, declared_version(event_type, dataschema), data, strict=True)


def _chain(event_type: str, version: int, data: Data, strict: bool) -> Data:
    while version < CURRENT_VERSIONS.get(event_type, 1):
        data = UPCASTERS[(event_type, version)](data, strict)
        version += 1
    return data
