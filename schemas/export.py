"""Export the JSON Schema of every event type into schemas/json/ for non-Python upstream teams."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.envelope import CloudEvent
from schemas.registry import ALL_TYPES

JSON_DIR = Path(__file__).parent / "json"


def schema_for(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type: the envelope with `type` fixed and `data` as its payload."""
    envelope = CloudEvent.model_json_schema()
    payload = ALL_TYPES[event_type].model_json_schema(ref_template="#/$defs/{model}")
    defs = {**envelope.pop("$defs", {}), **payload.pop("$defs", {})}
    envelope["properties"]["type"] = {"const": event_type, "title": "Type", "type": "string"}
    envelope["properties"]["data"] = payload
    envelope["title"] = event_type
    envelope["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    envelope["$id"] = f"https://casefeedback.example/schemas/{event_type}.schema.json"
    if defs:
        envelope["$defs"] = defs
    return envelope


def rendered(event_type: str) -> str:
    """The exact text the exported file for this type must hold."""
    return json.dumps(schema_for(event_type), indent=2, sort_keys=True) + "\n"


def export(directory: Path = JSON_DIR) -> list[Path]:
    """Write one `<type>.schema.json` per event type and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type in sorted(ALL_TYPES):
        path = directory / f"{event_type}.schema.json"
        path.write_text(rendered(event_type), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in export():
        print(written_path)
    sys.exit(0)
