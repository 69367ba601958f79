"""Erasure, retention and upcasting rules (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.upcast import payload_version, schema_urn, upcast
from services.audit.retention import RetentionRules, add_years, is_due, parse_rules
from services.common.errors import ConfigurationError
from services.common.redaction import ERASED, is_redaction, redact


def _received(**data: object) -> dict[str, object]:
    return {"specversion": "1.0", "id": "e1", "source": "crm", "type": "complaint.received", "subject": "c1",
            "time": "2026-01-05T09:00:00+00:00", "dataschema": schema_urn("complaint.received", 1),
            "data": {"service_area": "housing", "channel": "web", "stage": "stage1", "serious": False,
                     "themes": ["delay"], **data}}


def test_redaction_removes_personal_fields_and_extensions_and_keeps_every_figure_field() -> None:
    body = {**_received(complainant_ref="CR-1"), "crmnote": "Jo Bloggs", "rating": 3}
    redacted, fields = redact(body)
    assert fields == ["crmnote", "data.complainant_ref", "rating"]
    assert redacted["data"] == {**body["data"], "complainant_ref": ERASED}  # type: ignore[dict-item]
    assert redacted["crmnote"] == ERASED and redacted["dataschema"] == body["dataschema"]
    assert is_redaction(redacted, fields) and redact(redacted)[1] == []
    assert not is_redaction(redacted, ["data.service_area"])


@pytest.mark.parametrize(("type_", "field"), [("complaint.extension_agreed", "reason"),
                                              ("learning.action.added", "description")])
def test_free_text_reasons_and_descriptions_are_erased(type_: str, field: str) -> None:
    redacted, fields = redact({"type": type_, "data": {field: "text about someone", "stage": "stage1"}})
    assert fields == [f"data.{field}"] and redacted["data"] == {field: ERASED, "stage": "stage1"}


def test_retention_takes_the_most_specific_rule_and_counts_years_from_closure() -> None:
    rules = parse_rules({"default": {"years_after_closure": 6}, "procedures": {"spso-mchp": {"years_after_closure": 5}},
                         "service_areas": {"childrens_services": {"years_after_closure": 25}}})
    assert rules == RetentionRules(6, {"spso-mchp": 5}, {"childrens_services": 25})
    assert rules.years("spso-mchp", "childrens_services") == 25 and rules.years("spso-mchp", "housing") == 5
    assert is_due(rules, "dundee-2011", "housing", date(2020, 3, 1), date(2026, 3, 1)) == date(2026, 3, 1)
    assert is_due(rules, "dundee-2011", "housing", date(2020, 3, 2), date(2026, 3, 1)) is None
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)
    with pytest.raises(ConfigurationError, match="service_areas.housing"):
        parse_rules({"default": {"years_after_closure": 6}, "service_areas": {"housing": {"years": 6}}})


def test_upcasting_reads_version_1_as_version_2_and_drops_a_reference_that_is_a_name() -> None:
    assert payload_version(_received()) == 1 and payload_version({"type": "complaint.received"}) == 1
    kept = _received(complainant_ref="CR-000123")
    assert upcast(kept) is kept
    named = upcast(_received(complainant_ref="Jo Bloggs"))
    assert "complainant_ref" not in named["data"] and named["data"]["themes"] == ["delay"]
    current = {**_received(complainant_ref="Jo Bloggs"), "dataschema": schema_urn("complaint.received")}
    assert upcast(current) is current
