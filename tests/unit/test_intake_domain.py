"""Intake's pure decisions: verdicts on single records and the per-batch plan (order, holds, duplicates)."""

from __future__ import annotations

import json
from typing import Any

from services.common.eventstore import digest
from services.intake import domain
from services.intake.domain import Accepted, Append, Known, Refused, Release, judge, plan_batch

LIMIT = 256 * 1024
T = "2026-03-02T09:15:00+00:00"
RECEIVED = {"service_area": "housing", "channel": "phone", "stage": "stage1", "serious": False}


def event(type_: str, subject: str, data: dict[str, Any], id_: str) -> dict[str, Any]:
    return {"specversion": "1.0", "id": id_, "source": "crm/east", "type": type_, "subject": subject, "time": T,
            "data": data}


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def accepted(body: dict[str, Any]) -> Accepted:
    verdict = judge(raw(body), LIMIT)
    assert isinstance(verdict, Accepted), verdict
    return verdict


def nothing_known(**changes: Any) -> Known:
    base: dict[str, Any] = {"recorded": {}, "held": {}, "present": frozenset(), "waiting": frozenset()}
    return Known(**{**base, **changes})


def test_valid_event_is_accepted_with_the_event_stores_digest() -> None:
    verdict = accepted(event("complaint.received", "c1", RECEIVED, "e1"))
    assert verdict.digest == digest(verdict.body)
    assert verdict.body["data"]["themes"] == []  # defaults applied: the normalised body


def test_record_over_the_limit_is_too_large_without_parsing() -> None:
    verdict = judge(b"{" * 101, 100)
    assert verdict == Refused("too_large", "record is 101 bytes (key 0, value 101, headers 0); the limit is 100")


def test_each_failure_has_its_contract_reason_and_names_the_field() -> None:
    assert judge(b"\xff\xfe", LIMIT).reason == "not_json"  # type: ignore[union-attr]
    assert judge(b"[1]", LIMIT).reason == "not_cloudevent"  # type: ignore[union-attr]
    unknown = judge(raw(event("complaint.reopened", "c1", {}, "e1")), LIMIT)
    assert isinstance(unknown, Refused) and unknown.reason == "unknown_type" and unknown.type == "unknown"
    bad = judge(raw(event("complaint.responded", "c1", {"stage": "stage1", "outcome": "maybe"}, "e1")), LIMIT)
    assert isinstance(bad, Refused) and bad.reason == "invalid_data" and "data.outcome" in bad.detail
    assert bad.type == "complaint.responded"
    no_time = event("compliment.received", "k1", {}, "e1")
    del no_time["time"]
    missing = judge(raw(no_time), LIMIT)
    assert isinstance(missing, Refused) and missing.reason == "not_cloudevent" and "time" in missing.detail


def test_values_postgres_cannot_store_are_refused_not_crashing() -> None:
    nul = judge(raw(event("complaint.acknowledged", "c1", {"stage": "stage1"}, "e\u00001")), LIMIT)
    assert isinstance(nul, Refused) and nul.reason == "invalid_data" and "NUL" in nul.detail
    ancient = event("complaint.acknowledged", "c1", {"stage": "stage1"}, "e1")
    ancient["time"] = "0001-01-01T00:00:00+05:00"
    assert judge(raw(ancient), LIMIT).reason == "invalid_data"  # type: ignore[union-attr]
    with_extension = {**event("complaint.acknowledged", "c1", {"stage": "stage1"}, "e1"), "ext": "X"}
    surrogate = raw(with_extension).replace(b'"X"', b'"\\ud800"')
    assert judge(surrogate, LIMIT).reason == "not_json"  # type: ignore[union-attr]
    deep = judge(raw(with_extension).replace(b'"X"', b"[" * 900 + b"]" * 900), LIMIT)
    assert isinstance(deep, Refused) and deep.reason == "not_cloudevent" and "'ext'" in deep.detail


def test_type_label_is_bounded() -> None:
    assert domain.type_label("complaint.received") == "complaint.received"
    assert domain.type_label("x" * 90) == "unknown"
    assert domain.type_label(None) == "unknown"
    assert domain.type_label("deadline.breached") == "unknown"  # derived types never come in through intake


def test_which_events_need_a_predecessor() -> None:
    assert domain.awaits(event("complaint.received", "c1", RECEIVED, "e")) is None
    assert domain.awaits(event("complaint.closed", "c1", {}, "e")) == "complaint.received/c1"
    assert domain.awaits(event("learning.plan.submitted", "c1", {}, "e")) == "complaint.closed/c1"
    assert domain.provides(event("complaint.closed", "c1", {}, "e")) == "complaint.closed/c1"
    response = event("survey.response.submitted", "r1", {"survey_id": "s9"}, "e")
    assert domain.awaits(response) == "survey.defined/s9"
    assert domain.awaits(event("compliment.received", "k1", {}, "e")) is None
    assert domain.provides(event("survey.defined", "s9", {}, "e")) == "survey.defined/s9"
    assert domain.split_key("complaint.received/a/b") == ("complaint.received", "a/b")


def test_acknowledgement_before_its_case_in_one_batch_follows_the_case() -> None:
    ack = accepted(event("complaint.acknowledged", "c1", {"stage": "stage1"}, "a"))
    rec = accepted(event("complaint.received", "c1", RECEIVED, "r"))
    plan = plan_batch([ack, rec], nothing_known())
    assert plan.appends == [Append(1), Append(0)] and plan.holds == {}


def test_event_without_its_predecessor_is_held_and_a_later_one_joins_the_queue() -> None:
    ack = accepted(event("complaint.acknowledged", "c1", {"stage": "stage1"}, "a"))
    plan = plan_batch([ack], nothing_known())
    assert plan.appends == [] and plan.holds == {0: "complaint.received/c1"}
    plan = plan_batch([ack], nothing_known(waiting=frozenset({"complaint.received/c1"})))
    assert plan.holds == {0: "complaint.received/c1"}


def test_predecessor_releases_earlier_held_events_before_this_batchs_waiting_ones() -> None:
    ack = accepted(event("complaint.acknowledged", "c1", {"stage": "stage1"}, "a"))
    rec = accepted(event("complaint.received", "c1", RECEIVED, "r"))
    plan = plan_batch([ack, rec], nothing_known(waiting=frozenset({"complaint.received/c1"})))
    assert plan.appends == [Append(1), Release("complaint.received/c1"), Append(0)]


def test_known_predecessor_lets_the_event_through() -> None:
    ack = accepted(event("complaint.acknowledged", "c1", {"stage": "stage1"}, "a"))
    plan = plan_batch([ack], nothing_known(present=frozenset({"complaint.received/c1"})))
    assert plan.appends == [Append(0)]


def test_same_id_same_body_is_duplicate_other_body_conflict_in_history_hold_or_batch() -> None:
    one = accepted(event("compliment.received", "k1", {"service_area": "a", "channel": "b", "about": "staff"}, "x"))
    other = accepted(event("compliment.received", "k1", {"service_area": "z", "channel": "b", "about": "staff"}, "x"))
    assert plan_batch([one, one, other], nothing_known()).duplicates == [1]
    assert plan_batch([one, one, other], nothing_known()).conflicts == [2]
    assert plan_batch([one], nothing_known(recorded={"x": one.digest})).duplicates == [0]
    assert plan_batch([other], nothing_known(held={"x": one.digest})).conflicts == [0]


def test_refused_items_are_left_out_of_the_plan() -> None:
    plan = plan_batch([Refused("not_json", "x")], nothing_known())
    assert plan.appends == [] and plan.holds == {} and plan.duplicates == [] and plan.conflicts == []
