"""Payload versions and the upcaster chain: every older version of a payload reads as the current one.

An event says its payload version in the CloudEvents attribute `dataschema`
(`urn:casefeedback:schema:<type>:<version>`); an event without it was recorded under contract 1.1,
version 1. `upcast` applies the chain `UPCASTERS[(type, n)]` (version n to n + 1) until the current
version, so replay and every reader see one shape whatever year the history was recorded in.
Upcasters are pure and change nothing a figure depends on without a new contract version.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]
SCHEMA_URN = re.compile(r"^urn:casefeedback:schema:(?P<type>[a-z0-9_.]+):(?P<version>[1-9][0-9]*)$")
# A pseudonymous reference: no white space and no '@', so neither a name nor an e-mail address passes.
PSEUDONYMOUS_REF = re.compile(r"^[^\s@]{1,100}$")


def _v1_to_v2_complaint_received(data: Data) -> Data:
    """Version 2 of complaint.received checks that `complainant_ref` is pseudonymous (contract: never a name);
    a version 1 reference that is not (a name or an address sent by mistake) is not carried forward."""
    ref = data.get("complainant_ref")
    if ref is None or (isinstance(ref, str) and (PSEUDONYMOUS_REF.match(ref) or ref == "[erased]")):
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


def payload_version(body: dict[str, Any]) -> int:
    """The payload version an event says it carries (1 when it says none: contract 1.1 history)."""
    match = SCHEMA_URN.match(str(body.get("dataschema", "")))
    return int(match["version"]) if match and match["type"] == body.get("type") else 1


def upcast(body: dict[str, Any]) -> dict[str, Any]:
    """The event with its payload at the current version of its type (the same dict when it already is)."""
    event_type = str(body.get("type"))
    if event_type not in UPCAST_TYPES:
        return body
    version, current, data = payload_version(body), CURRENT_VERSIONS[event_type], body["data"]
    if version >= current:
        return body
    while version < current:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    return body if data is body["data"] else {**body, "data": data}
