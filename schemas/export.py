"""Export the contract's machine-readable forms from the models: one JSON Schema per event type into
schemas/json/, and the AsyncAPI 3.0 document of every topic, message and schema (schemas/asyncapi.yaml)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from schemas.deadletters import DeadLetter
from schemas.envelope import CloudEvent
from schemas.registry import (
    ALERT_TYPES,
    ALL_TYPES,
    DERIVED_TYPES,
    INBOUND_TOPICS,
    INBOUND_TYPES,
    TOPIC_ALERTS,
    TOPIC_DEADLETTER,
    TOPIC_EVENTS,
)
from schemas.upcast import schema_urns

JSON_DIR = Path(__file__).parent / "json"
ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.yaml"


def schema_for(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type: the envelope with `type` fixed and `data` as its payload."""
    envelope = CloudEvent.model_json_schema()
    payload = ALL_TYPES[event_type].model_json_schema(ref_template="#/$defs/{model}")
    defs = {**envelope.pop("$defs", {}), **payload.pop("$defs", {})}
    envelope["properties"]["type"] = {"const": event_type, "title": "Type", "type": "string"}
    envelope["properties"]["dataschema"] = {
        "enum": schema_urns(event_type), "title": "Dataschema", "type": "string",
        "description": "The payload version `data` is in (optional: the current, last one when left out); "
                       "recorded events always carry it"}
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


def export(directory: Path = JSON_DIR, asyncapi_path: Path = ASYNCAPI_PATH) -> list[Path]:
    """Write one `<type>.schema.json` per event type and the AsyncAPI document; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type in sorted(ALL_TYPES):
        path = directory / f"{event_type}.schema.json"
        path.write_text(rendered(event_type), encoding="utf-8")
        written.append(path)
    asyncapi_path.write_text(asyncapi_rendered(), encoding="utf-8")
    written.append(asyncapi_path)
    return written


# --- AsyncAPI 3.0 ------------------------------------------------------------------------------

CONTRACT_VERSION = "1.1.0"
STRUCTURED = "application/cloudevents+json"
TOPIC_DOCS = {
    "feedback.complaints": "complaint.* events from upstream systems",
    "feedback.compliments": "compliment.* events from upstream systems",
    "feedback.surveys": "survey.* events from upstream systems",
    "feedback.learning": "learning.action.* and learning.plan.submitted from managers' forms",
    TOPIC_DEADLETTER: "every refused record, with why (contract section 5)",
    TOPIC_EVENTS: "the accepted, de-duplicated history: every accepted inbound event and every derived event",
    TOPIC_ALERTS: "deadline.warning, deadline.breached, learning.stage.overdue and deadline.breach_withdrawn "
                  "(a breach an act recorded later showed was met in time)",
}


def _name(text: str) -> str:
    """An AsyncAPI component name (letters, digits, `.`, `_`, `-`)."""
    return text.replace("/", "_")


def _hoisted(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The schema with its `$defs` moved into the document's components and its `$ref`s pointed there."""
    schema = json.loads(json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/'))
    components.update(schema.pop("$defs", {}))
    schema.pop("$schema", None)
    schema.pop("$id", None)
    return schema


def _binary_headers(event_type: str) -> dict[str, Any]:
    """Binary content mode's headers: each envelope attribute as `ce_<name>`, `datacontenttype` as content-type."""
    envelope = schema_for(event_type)["properties"]
    headers = {f"ce_{name}": envelope[name] for name in ("specversion", "id", "source", "type", "subject", "time")}
    headers["content-type"] = envelope["datacontenttype"]["anyOf"][0]
    headers["ce_dataschema"] = envelope["dataschema"]
    return {"type": "object", "required": [f"ce_{n}" for n in ("specversion", "id", "source", "type", "subject",
                                                                  "time")],
            "properties": headers, "additionalProperties": {"type": "string"},
            "description": "CloudEvents Kafka binding, binary content mode: extension attributes are further "
                           "ce_-prefixed headers"}


def _messages(schemas: dict[str, Any]) -> dict[str, Any]:
    key = {"type": "string", "description": "the event's subject (a key other than the subject is accepted and "
                                           "counted as casefeedback_key_mismatch_total)"}
    messages: dict[str, Any] = {}
    for event_type in sorted(ALL_TYPES):
        schemas[event_type] = _hoisted(schema_for(event_type), schemas)
        messages[_name(event_type)] = {
            "name": event_type, "title": f"{event_type} (structured mode)", "contentType": STRUCTURED,
            "payload": {"$ref": f"#/components/schemas/{event_type}"}, "bindings": {"kafka": {"key": key}}}
        if event_type in INBOUND_TYPES:
            messages[_name(event_type) + ".binary"] = {
                "name": event_type, "title": f"{event_type} (binary mode)", "contentType": "application/json",
                "headers": _binary_headers(event_type),
                "payload": {"$ref": f"#/components/schemas/{event_type}/properties/data"},
                "bindings": {"kafka": {"key": key}}}
    schemas["DeadLetter"] = _hoisted(DeadLetter.model_json_schema(ref_template="#/$defs/{model}"), schemas)
    messages["deadletter"] = {"name": "deadletter", "title": "A refused record", "contentType": "application/json",
                              "payload": {"$ref": "#/components/schemas/DeadLetter"}}
    return messages


def _channel_messages(topic: str) -> list[str]:
    if topic in INBOUND_TOPICS:
        types = sorted(t for t, (_, t_topic) in INBOUND_TYPES.items() if t_topic == topic)
        return [m for t in types for m in (_name(t), _name(t) + ".binary")]
    if topic == TOPIC_EVENTS:
        return [_name(t) for t in sorted(ALL_TYPES)]
    if topic == TOPIC_ALERTS:
        return [_name(t) for t in sorted(ALERT_TYPES)]
    return ["deadletter"]


def _channels() -> dict[str, Any]:
    channels = {}
    for topic, about in TOPIC_DOCS.items():
        refs = {m: {"$ref": f"#/components/messages/{m}"} for m in _channel_messages(topic)}
        channels[_name(topic)] = {"address": topic, "description": about, "messages": refs,
                                  "bindings": {"kafka": {"topic": topic}}}
    return channels


def _operations() -> dict[str, Any]:
    """What casefeedback does on each channel: receive the inbound topics, send the others."""
    operations = {}
    for topic in TOPIC_DOCS:
        action = "receive" if topic in INBOUND_TOPICS else "send"
        channel = _name(topic)
        operations[f"{action}.{channel}"] = {
            "action": action, "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in _channel_messages(topic)]}
    return operations


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic, message and schema of the public contract."""
    schemas: dict[str, Any] = {}
    messages = _messages(schemas)
    derived = ", ".join(sorted(DERIVED_TYPES))
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "casefeedback", "version": CONTRACT_VERSION,
                 "description": "Public contract 1.1 (docs/contract.md): CloudEvents 1.0 on Kafka, keyed by subject, "
                                "structured or binary content mode on the inbound topics. Derived types: "
                                f"{derived}."},
        "defaultContentType": STRUCTURED,
        "channels": _channels(),
        "operations": _operations(),
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def asyncapi_rendered() -> str:
    """The exact text schemas/asyncapi.yaml must hold."""
    return yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=False, width=120)


if __name__ == "__main__":
    for written_path in export():
        print(written_path)
    sys.exit(0)
