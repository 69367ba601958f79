"""The event contract in code: models, exported JSON Schemas and examples agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import ALL_TYPES, INBOUND_TYPES, Rejection, validate_inbound, validate_object
from schemas.export import JSON_DIR, rendered

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES))
def test_exported_json_schema_matches_model(event_type: str) -> None:
    path = JSON_DIR / f"{event_type}.schema.json"
    assert path.exists(), f"run `python -m schemas.export`: {path.name} is missing"
    assert path.read_text() == rendered(event_type), f"{path.name} is stale: run `python -m schemas.export`"


def test_no_stray_exported_schema() -> None:
    exported = {p.name.removesuffix(".schema.json") for p in JSON_DIR.glob("*.schema.json")}
    assert exported == set(ALL_TYPES)


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES))
def test_every_type_has_a_valid_example(event_type: str) -> None:
    example = json.loads((EXAMPLES / f"{event_type}.json").read_text())
    assert example["type"] == event_type
    assert validate_object(example).envelope.type == event_type


def test_inbound_examples_file_holds_every_inbound_type_and_validates() -> None:
    lines = (EXAMPLES / "inbound.jsonl").read_bytes().splitlines()
    types = {validate_inbound(line).envelope.type for line in lines}
    assert types == set(INBOUND_TYPES)


def _example(event_type: str) -> dict:
    return json.loads((EXAMPLES / f"{event_type}.json").read_text())


@pytest.mark.parametrize(
    ("change", "reason", "fragment"),
    [
        (lambda e: e.pop("id"), "not_cloudevent", "id"),
        (lambda e: e.update(specversion="0.3"), "not_cloudevent", "specversion"),
        (lambda e: e.update(time="2026-03-02T09:15:00"), "not_cloudevent", "time"),
        (lambda e: e.update(type="complaint.lost"), "unknown_type", "complaint.lost"),
        (lambda e: e["data"].pop("serious"), "invalid_data", "data.serious"),
        (lambda e: e["data"].update(serious="maybe"), "invalid_data", "data.serious"),
        (lambda e: e["data"].update(service_area="x" * 101), "invalid_data", "data.service_area"),
        (lambda e: e["data"].update(nickname="Jo"), "invalid_data", "data.nickname"),
    ],
)
def test_invalid_events_are_rejected_with_reason_and_field(change, reason: str, fragment: str) -> None:
    event = _example("complaint.received")
    change(event)
    with pytest.raises(Rejection) as info:
        validate_inbound(json.dumps(event).encode())
    assert info.value.reason == reason
    assert fragment in info.value.detail


def test_derived_types_are_not_accepted_from_upstream() -> None:
    with pytest.raises(Rejection) as info:
        validate_inbound(json.dumps(_example("deadline.breached")).encode())
    assert info.value.reason == "unknown_type"


def test_not_json_and_not_object() -> None:
    with pytest.raises(Rejection) as info:
        validate_inbound(b"\xff\xfe")
    assert info.value.reason == "not_json"
    with pytest.raises(Rejection) as info:
        validate_inbound(b"[1, 2]")
    assert info.value.reason == "not_cloudevent"


def test_survey_positive_answers_must_be_on_the_scale() -> None:
    event = _example("survey.defined")
    event["data"]["questions"][0]["positive"] = ["yes"]
    with pytest.raises(Rejection) as info:
        validate_inbound(json.dumps(event).encode())
    assert info.value.reason == "invalid_data"
    assert "likert5" in info.value.detail
