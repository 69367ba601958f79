"""What erasure removes from an event: its personal and free-text fields, and nothing a figure uses.

The same rule as the database's `erasable_field` (migration 014): per type the contract's free-text
or personal payload fields, and every extension attribute (a top-level attribute CloudEvents does not
define). Themes, service areas, stages, outcomes and dates stay: every count is kept. Pure: the
history, intake's hold table and learning's held events are redacted by this one function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ERASED = "[erased]"
# type -> payload fields that hold personal data or free text (contract sections 3 and 4)
ERASABLE_DATA: dict[str, tuple[str, ...]] = {
    "complaint.received": ("complainant_ref",),
    "complaint.extension_agreed": ("reason",),
    "learning.action.added": ("description",),
}
ENVELOPE_ATTRIBUTES = frozenset({"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
                                 "data", "dataschema"})


def erasable_fields(body: Mapping[str, Any]) -> list[str]:
    """The fields of `body` erasure would remove (dotted paths, e.g. `data.reason`), not yet erased."""
    fields = [name for name, value in body.items() if name not in ENVELOPE_ATTRIBUTES and value != ERASED]
    data = body.get("data")
    if isinstance(data, Mapping):
        fields += [f"data.{name}" for name in ERASABLE_DATA.get(str(body.get("type")), ())
                   if name in data and data[name] != ERASED]
    return sorted(fields)


def redact(body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The body with each erasable field's value replaced by `ERASED`, and the fields so replaced."""
    fields = erasable_fields(body)
    out = dict(body)
    for field in fields:
        if field.startswith("data."):
            out["data"] = {**out["data"], field[5:]: ERASED}
        else:
            out[field] = ERASED
    return out, fields


def is_redaction(body: Mapping[str, Any], fields: list[str]) -> bool:
    """Whether every one of `fields` is erasable in `body` and holds `ERASED` (what an erased event must show)."""
    allowed = ERASABLE_DATA.get(str(body.get("type")), ())
    for field in fields:
        if field.startswith("data."):
            data = body.get("data")
            ok = field[5:] in allowed and isinstance(data, Mapping) and data.get(field[5:]) == ERASED
        else:
            ok = field not in ENVELOPE_ATTRIBUTES and "." not in field and body.get(field) == ERASED
        if not ok:
            return False
    return bool(fields)
