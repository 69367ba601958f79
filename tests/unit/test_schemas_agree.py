"""One validator: what intake accepts is exactly what the published JSON Schemas accept.

Documents are drawn from the models' examples and mutations of them (a field removed, retyped, set
to a tricky value, an unknown field added), and each is judged by intake and by a standard JSON
Schema validator (the `jsonschema` package, with its format checker) on the type's published
schema. Intake's story checks, which need more than the document (`inconsistent`, `not_allowed`),
are not the schemas' to say and are left out of the comparison.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.export import JSON_DIR
from schemas.registry import INBOUND_TYPES
from services.intake.domain import Accepted, judge

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"
VALIDATORS = {t: jsonschema.Draft202012Validator(json.loads((JSON_DIR / f"{t}.schema.json").read_text()),
                                                 format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
              for t in INBOUND_TYPES}
BASES = [json.loads((EXAMPLES / f"{t}.json").read_text()) for t in sorted(INBOUND_TYPES)]
STORY = frozenset({"inconsistent", "not_allowed"})
TRICKY: list[Any] = [
    None, True, False, 0, 1, 4, 4.0, 4.5, -1, 11, 10**20, "", " ", "x", "x" * 101, "two words", "line\n", "4", "yes",
    "Very satisfied", [], [1], ["4"], {}, {"a": 1}, "2026-03-02T09:15:00Z", "2026-03-02t09:15:00z",
    "2026-03-02T09:15:00.123456+01:00", "2026-02-30T09:15:00Z", "2026-03-02T09:15Z", "2026-03-02 09:15:00Z",
    "1899-12-31T23:00:00Z", "3000-01-01T00:00:00Z", "2026-03-02", "2026-3-2", "2026-03-02\n", "20260302",
    "application/json", "application/json; charset=utf-8", "text/plain", "1.0", "stage2", "Stage 2", "upheld",
    "likert5", "score10", "yes_no", "staff", "systemic", 0.5, 1.5, "complaint.received",
]


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document (keys and list indexes), the root excluded."""
    out: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        out.append((*prefix, key))
        out.extend(paths(child, (*prefix, key)))
    return out


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """An example of an inbound type, with up to three mutations."""
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):
        targets = paths(doc)
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(TRICKY)))
        elif action == "remove" and isinstance(parent, dict) and path[-1] != "type":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            name = draw(st.sampled_from(["extra", "ext", "theme", "datacontenttype"]))
            parent[name] = copy.deepcopy(draw(st.sampled_from(TRICKY)))
    return doc


def schema_accepts(doc: dict[str, Any]) -> bool:
    validator = VALIDATORS.get(doc.get("type")) if isinstance(doc.get("type"), str) else None
    return validator is not None and validator.is_valid(doc)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_intake_and_the_published_schemas_agree_on_every_document(doc: dict[str, Any]) -> None:
    verdict = judge(json.dumps(doc).encode(), 262_144)
    if not isinstance(verdict, Accepted) and verdict.reason in STORY:
        return
    assert isinstance(verdict, Accepted) == schema_accepts(doc), (verdict, doc)


def test_the_examples_are_valid_by_both() -> None:
    for doc in BASES:
        assert schema_accepts(doc) and isinstance(judge(json.dumps(doc).encode(), 262_144), Accepted)
