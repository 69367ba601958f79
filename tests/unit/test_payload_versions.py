"""Payload versions at intake (`dataschema`), complaint.received version 2, and topic retention (pure)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.canonical import canonical
from schemas.upcast import schema_urn, upcast
from services.common.errors import ConfigurationError
from services.common.eventstore import digest
from services.common.kafka import new_topics
from services.common.settings import load_settings
from services.deadlines.timers import derived_event
from services.intake.domain import Accepted, Known, Refused, judge, plan_batch

LIMIT = 256 * 1024
V1, V2 = schema_urn("complaint.received", 1), schema_urn("complaint.received", 2)
COMPOSE = Path(__file__).parents[2] / "deploy" / "docker-compose.yml"


def received(ref: str | None = "CR-000123", **attributes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"service_area": "housing", "channel": "phone", "stage": "stage1", "serious": False}
    if ref is not None:
        data["complainant_ref"] = ref
    return {"specversion": "1.0", "id": "e1", "source": "crm/east", "type": "complaint.received", "subject": "c1",
            "time": "2026-03-02T09:15:00+00:00", "datacontenttype": "application/json", "data": data, **attributes}


def judged(body: dict[str, Any]) -> Accepted | Refused:
    return judge(json.dumps(body).encode(), LIMIT, "feedback.complaints")


def accepted(body: dict[str, Any]) -> Accepted:
    verdict = judged(body)
    assert isinstance(verdict, Accepted), verdict
    return verdict


def binary(body: dict[str, Any]) -> Accepted | Refused:
    headers = [(f"ce_{k}", str(v).encode()) for k, v in body.items() if k not in ("data", "datacontenttype")]
    return judge(json.dumps(body["data"]).encode(), LIMIT, "feedback.complaints",
                 [*headers, ("content-type", b"application/json; charset=utf-8")])


def test_an_event_without_dataschema_is_recorded_with_the_current_version_of_its_type() -> None:
    complaint = accepted(received())
    assert complaint.body["dataschema"] == V2 == "urn:casefeedback:schema:complaint.received:2"
    assert complaint.digest == digest(complaint.body)  # stamped before digesting
    compliment = judge(json.dumps({**received(), "type": "compliment.received",
                                   "data": {"service_area": "housing", "channel": "web", "about": "staff"}}).encode(),
                       LIMIT)
    assert isinstance(compliment, Accepted)
    assert compliment.body["dataschema"] == "urn:casefeedback:schema:compliment.received:1"


def test_one_event_sent_with_or_without_its_dataschema_or_in_binary_mode_is_one_event() -> None:
    digests = {accepted(received()).digest, accepted(received(dataschema=V2)).digest,
               accepted(received(dataschema=V1)).digest}
    in_binary = binary(received(dataschema=V1))
    assert isinstance(in_binary, Accepted)
    assert digests == {in_binary.digest}
    again = plan_batch([accepted(received())], Known({"e1": in_binary.digest}, {}, frozenset(), frozenset()))
    assert again.duplicates == [0] and not again.conflicts


def test_an_event_recorded_before_versions_were_stamped_is_still_a_duplicate_when_sent_again() -> None:
    unversioned = hashlib_digest({k: v for k, v in accepted(received()).body.items() if k != "dataschema"})
    plan = plan_batch([accepted(received())], Known({"e1": unversioned}, {}, frozenset(), frozenset()))
    assert plan.duplicates == [0] and not plan.conflicts
    other = plan_batch([accepted(received("CR-2"))], Known({"e1": unversioned}, {}, frozenset(), frozenset()))
    assert other.conflicts == [0]


def hashlib_digest(body: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical(body)).digest()


@pytest.mark.parametrize("dataschema", [
    "urn:casefeedback:schema:complaint.received:3",  # a later version than this intake knows
    "urn:casefeedback:schema:compliment.received:1",  # another type's
    "https://example.org/complaint.json",  # another form
    "urn:casefeedback:schema:complaint.received:0",
    7,
])
def test_an_unknown_or_future_dataschema_is_refused_as_invalid_data_naming_the_known_versions(
        dataschema: object) -> None:
    for verdict in (judged(received(dataschema=dataschema)), binary(received(dataschema=dataschema))):
        assert isinstance(verdict, Refused) and verdict.reason == "invalid_data", verdict
        assert "dataschema" in verdict.detail and V1 in verdict.detail and V2 in verdict.detail


@pytest.mark.parametrize("ref", ["Jo Bloggs", "jo.bloggs@example.org", "jo@x", "Jo\tBloggs", "CR-1\n", " CR-1"])
@pytest.mark.parametrize("dataschema", [None, V1, V2])
def test_a_complainant_ref_that_is_a_name_or_an_address_is_refused_whatever_version_is_said(
        ref: str, dataschema: str | None) -> None:
    body = received(ref) if dataschema is None else received(ref, dataschema=dataschema)
    verdict = judged(body)
    assert isinstance(verdict, Refused) and verdict.reason == "invalid_data", verdict
    assert verdict.detail.startswith("data.complainant_ref:") and "never a name or an e-mail address" in verdict.detail


@pytest.mark.parametrize("ref", ["CR-000123", "crm:east/4471", "A1b2C3", "x" * 100, None])
def test_a_pseudonymous_reference_or_none_is_accepted(ref: str | None) -> None:
    assert accepted(received(ref)).body["data"].get("complainant_ref") == ref


def test_the_published_schema_states_the_version_2_check_and_the_known_versions() -> None:
    schema = json.loads((Path(__file__).parents[2] / "schemas/json/complaint.received.schema.json").read_text())
    ref = schema["properties"]["data"]["properties"]["complainant_ref"]
    assert "@" in ref["pattern"] and " " in ref["pattern"]
    assert schema["properties"]["dataschema"]["enum"] == [V1, V2]


def test_version_1_history_still_upcasts_where_a_new_event_is_refused() -> None:
    old = {**received("Jo Bloggs"), "dataschema": V1}
    assert "complainant_ref" not in upcast(old)["data"]
    assert upcast({k: v for k, v in old.items() if k != "dataschema"})["data"] == upcast(old)["data"]


def test_derived_events_carry_their_payload_version() -> None:
    body = derived_event("casefeedback/learning", "learning.stage.opened", "c1", _time(), {"due": "x"}, "k")
    assert body["dataschema"] == "urn:casefeedback:schema:learning.stage.opened:1"


def _time() -> datetime:
    return datetime(2026, 3, 2, tzinfo=UTC)


# --- topic retention ------------------------------------------------------------------------


def test_topics_are_created_with_the_configured_retention_or_the_brokers_default() -> None:
    kafka = load_settings({"CASEFEEDBACK_TOPIC_RETENTION_MS": "2592000000", "CASEFEEDBACK_PARTITIONS": "3"}).kafka
    topic = new_topics(kafka, ["feedback.complaints"])[0]
    assert (topic.name, topic.num_partitions, topic.topic_configs) == (
        "feedback.complaints", 3, {"retention.ms": "2592000000"})
    assert new_topics(load_settings({}).kafka, ["feedback.complaints"])[0].topic_configs == {}


def test_a_retention_that_would_keep_erased_values_forever_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CASEFEEDBACK_TOPIC_RETENTION_MS must be a positive number"):
        load_settings({"CASEFEEDBACK_TOPIC_RETENTION_MS": "-1"})


def test_deploy_sets_the_topic_retention_for_every_service() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("intake", "escalation", "learning", "metrics", "relay"):
        env = services[name]["environment"]
        assert int(env["CASEFEEDBACK_TOPIC_RETENTION_MS"]) == 30 * 24 * 3600 * 1000, name
