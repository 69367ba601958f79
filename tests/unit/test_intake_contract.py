"""Intake as contract 1.1 says: binary content mode, media type parameters, surveys as councils write them,
story checks, the wrong topic, refusals logged and every dead-letter reason exported from start-up."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from prometheus_client import REGISTRY

from services.cases import rules
from services.cases.story import Refusal, act_of
from services.common.deadletter import REASONS
from services.deadlines.procedure_files import load_book
from services.intake import story
from services.intake.domain import Accepted, Known, Refused, judge, plan_batch
from services.intake.worker import Origin, Outcome

LIMIT = 262_144
BOOK = load_book()
T = "2026-03-02T09:15:00+00:00"
COMPLAINTS, SURVEYS = "feedback.complaints", "feedback.surveys"


def event(type_: str, subject: str, data: dict[str, Any], id_: str, time_: str = T, **attrs: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": id_, "source": "crm/east", "type": type_, "subject": subject, "time": time_,
            "data": data, **attrs}


def received(case: str, id_: str = "r1", time_: str = T) -> dict[str, Any]:
    return event("complaint.received", case, {"service_area": "housing", "channel": "phone", "stage": "stage1",
                                              "serious": False}, id_, time_, datacontenttype="application/json")


def accepted(body: dict[str, Any], topic: str | None = None) -> Accepted:
    verdict = judge(json.dumps(body).encode(), LIMIT, topic)
    assert isinstance(verdict, Accepted), verdict
    return verdict


def refused(body: dict[str, Any], topic: str | None = None) -> Refused:
    verdict = judge(json.dumps(body).encode(), LIMIT, topic)
    assert isinstance(verdict, Refused), verdict
    return verdict


def known(**openers: story.Opener) -> Known:
    return Known({}, {}, frozenset(openers), frozenset(), openers)


# --- content modes and media types --------------------------------------------------------------


@pytest.mark.parametrize("media_type", ["application/json; charset=utf-8", "application/json;charset=UTF-8"])
def test_datacontenttype_with_parameters_is_accepted_as_the_same_event(media_type: str) -> None:
    plain = accepted(received("c1"))
    with_parameters = accepted({**received("c1"), "datacontenttype": media_type})
    assert with_parameters.body["datacontenttype"] == "application/json"
    assert with_parameters.digest == plain.digest


@pytest.mark.parametrize("media_type", ["text/plain", "application/jsonl", "application/json\n"])
def test_other_media_types_are_refused(media_type: str) -> None:
    assert refused({**received("c1"), "datacontenttype": media_type}).reason == "not_cloudevent"


def sdk_event(body: dict[str, Any]) -> SdkEvent:
    attributes = {k: v for k, v in body.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])
    return SdkEvent(attributes, body["data"])


def test_the_cloudevents_sdks_binary_mode_is_the_same_event_as_its_structured_mode() -> None:
    sdk = sdk_event(received("c1"))
    binary = ce_kafka.to_binary(sdk, JSONFormat())
    structured = ce_kafka.to_structured(sdk, JSONFormat())
    by_binary = judge(binary.value, LIMIT, COMPLAINTS, list(binary.headers.items()))
    by_structured = judge(structured.value, LIMIT, COMPLAINTS, list(structured.headers.items()))
    assert isinstance(by_binary, Accepted) and isinstance(by_structured, Accepted)
    assert by_binary.body == by_structured.body and by_binary.digest == by_structured.digest
    assert plan_batch([by_structured, by_binary], known()).duplicates == [1]


def test_a_binary_mode_record_missing_an_attribute_names_it() -> None:
    headers = [(k, v) for k, v in ce_kafka.to_binary(sdk_event(received("c1")), JSONFormat()).headers.items()
               if k != "ce_subject"]
    verdict = judge(b'{"service_area": "housing"}', LIMIT, COMPLAINTS, headers)
    assert isinstance(verdict, Refused) and verdict.reason == "not_cloudevent"
    assert "subject" in verdict.detail and verdict.id == "r1"


def test_binary_mode_data_is_checked_as_the_payload() -> None:
    message = ce_kafka.to_binary(sdk_event(received("c1")), JSONFormat())
    verdict = judge(b'{"service_area": "housing"}', LIMIT, COMPLAINTS, list(message.headers.items()))
    assert isinstance(verdict, Refused) and verdict.reason == "invalid_data" and "data.channel" in verdict.detail


def test_structured_mode_headers_do_not_make_a_record_binary() -> None:
    headers = [("content-type", b"application/cloudevents+json"), ("ce_specversion", b"1.0")]
    assert isinstance(judge(json.dumps(received("c1")).encode(), LIMIT, COMPLAINTS, headers), Accepted)


# --- topics and the event's own story ------------------------------------------------------------


def test_a_valid_event_on_another_types_topic_is_wrong_topic() -> None:
    verdict = refused(received("c1"), SURVEYS)
    assert verdict.reason == "wrong_topic" and "feedback.complaints" in verdict.detail
    assert verdict.type == "complaint.received"


def test_an_extension_agreed_to_a_date_before_the_agreement_is_inconsistent() -> None:
    body = event("complaint.extension_agreed", "c1", {"stage": "stage1", "new_due": "2026-03-01", "reason": "visit"},
                 "x1")
    assert refused(body).reason == "inconsistent"
    assert isinstance(judge(json.dumps({**body, "data": {**body["data"], "new_due": "2026-03-02"}}).encode(), LIMIT),
                      Accepted)


@pytest.mark.parametrize("type_, data", [
    ("complaint.responded", {"stage": "stage1", "outcome": "upheld"}),
    ("complaint.closed", {}),
    ("complaint.escalated", {"to_stage": "stage2"}),
    ("complaint.extension_agreed", {"stage": "stage1", "new_due": "2026-03-20", "reason": "visit"}),
])
def test_an_act_dated_before_its_complaint_was_received_is_inconsistent(type_: str, data: dict[str, Any]) -> None:
    """Judged at the door against the case's story (`services.cases`), as intake appends it."""
    receipt = act_of(accepted(received("c1")).body, datetime(2026, 3, 2, 9, 15, tzinfo=UTC))
    early = accepted(event(type_, "c1", data, "a1", "2026-03-01T09:00:00+00:00"))
    assert receipt is not None
    out = rules.judge(rules.tell([receipt], BOOK).case, act_of(early.body, early.time or datetime.now(UTC)), BOOK)
    assert isinstance(out, Refusal) and out.reason == "inconsistent"


def test_an_act_before_a_receipt_in_the_same_batch_is_inconsistent_and_the_receipt_is_kept() -> None:
    early = accepted(event("complaint.responded", "c1", {"stage": "stage1", "outcome": "upheld"}, "a1",
                           "2026-03-01T09:00:00+00:00"))
    later = accepted(event("complaint.acknowledged", "c1", {"stage": "stage1"}, "a2", "2026-03-03T09:00:00+00:00"))
    items = [early, accepted(received("c1")), later]
    acts = [act_of(a.body, a.time or datetime.now(UTC)) for a in items]
    told = rules.tell([a for a in acts if a is not None], BOOK)
    assert [a.id for a, _ in told.refused] == ["a1"] and told.refused[0][1].reason == "inconsistent"
    assert [a.type for a in told.case.acts] == ["complaint.received", "complaint.acknowledged"]


# --- surveys as councils write them --------------------------------------------------------------


def survey(positive: list[Any], scale: str = "likert5") -> dict[str, Any]:
    return event("survey.defined", "s1", {"title": "Housing repairs", "questions": [
        {"question_id": "q1", "text": "How satisfied are you?", "scale": scale, "positive": positive}]}, "d1")


@pytest.mark.parametrize(("positive", "scale"), [([4, 5], "likert5"), (["4", "5"], "likert5"), ([4, "5"], "likert5"),
                                                 ([9, 10], "score10"), (["yes"], "yes_no"), ([True], "yes_no")])
def test_positive_answers_may_be_numbers_or_text(positive: list[Any], scale: str) -> None:
    assert accepted(survey(positive, scale), SURVEYS).body["data"]["questions"][0]["positive"] == positive


@pytest.mark.parametrize(("positive", "scale"), [(["Very satisfied"], "likert5"), ([11], "score10"),
                                                 ([True], "likert5"), ([1], "yes_no"), ([4.5], "likert5")])
def test_positive_answers_off_the_scale_are_refused(positive: list[Any], scale: str) -> None:
    assert refused(survey(positive, scale)).reason == "invalid_data"


def response(answer: Any) -> Accepted:
    return accepted(event("survey.response.submitted", "r1", {"survey_id": "s1", "respondent_type": "service_user",
                                                              "answers": {"q1": answer}}, "resp1"))


@pytest.mark.parametrize(("answer", "scale"), [("Very satisfied", "likert5"), (11, "score10"), (0, "likert5"),
                                               ("maybe", "yes_no")])
def test_an_answer_off_its_questions_scale_is_refused_naming_the_question_and_scale(answer: Any, scale: str) -> None:
    opener = story.opener_of(survey(["4"] if scale != "yes_no" else ["yes"], scale))
    plan = plan_batch([response(answer)], known(**{"survey.defined/s1": opener}))
    assert plan.appends == [] and plan.refusals[0].reason == "invalid_data"
    assert "q1" in plan.refusals[0].detail and scale in plan.refusals[0].detail


@pytest.mark.parametrize("answer", [4, "4", 1, 5])
def test_answers_on_the_scale_are_accepted(answer: Any) -> None:
    plan = plan_batch([response(answer)], known(**{"survey.defined/s1": story.opener_of(survey([4, 5]))}))
    assert len(plan.appends) == 1 and plan.refusals == {}


@pytest.mark.parametrize(("answer", "scale"), [("Yes", "yes_no"), (" no ", "yes_no"), (True, "yes_no"),
                                               (" 4 ", "likert5"), ("10", "score10")])
def test_answers_are_on_the_scale_as_the_metrics_and_the_report_key_them(answer: Any, scale: str) -> None:
    # One key for an answer everywhere: what intake lets through is what metrics and the report count.
    from services.common.figures import answer_key

    opener = story.opener_of(survey(["4"] if scale != "yes_no" else ["yes"], scale))
    plan = plan_batch([response(answer)], known(**{"survey.defined/s1": opener}))
    assert len(plan.appends) == 1 and plan.refusals == {}
    assert answer_key(answer) != "other"


def test_a_response_is_checked_against_a_survey_defined_earlier_in_the_batch() -> None:
    plan = plan_batch([accepted(survey([4, 5])), response(11)], known())
    assert [a.item for a in plan.appends] == [0] and plan.refusals[1].reason == "invalid_data"  # type: ignore[union-attr]


def test_a_held_response_is_checked_when_its_survey_releases_it() -> None:
    held_body = response("Very satisfied").body
    problem = story.problem(held_body, story.opener_of(survey([4, 5])))
    assert problem is not None and problem.reason == "invalid_data"


# --- saying what was refused ---------------------------------------------------------------------


def test_every_dead_letter_reason_is_exported_at_start_up() -> None:
    for reason in REASONS:
        assert REGISTRY.get_sample_value("casefeedback_deadletter_total", {"reason": reason}) is not None, reason


def test_each_refusal_is_logged_on_one_line_without_the_body(caplog: pytest.LogCaptureFixture) -> None:
    origin = Origin(COMPLAINTS, 3, 41, b"c1", b'{"secret": "complainant name"}', datetime.now(UTC))
    with caplog.at_level(logging.INFO, logger="services.intake.worker"):
        Outcome().refuse(origin, "complaint.received", "invalid_data", "data.serious: bad", "ev-9")
    (line,) = [r.getMessage() for r in caplog.records]
    assert "invalid_data" in line and "feedback.complaints[3]@41" in line and "'ev-9'" in line
    assert "complainant name" not in line and "\n" not in line
