"""Intake accepts exactly what the published JSON Schemas accept: no coercion, no lies about the source.

The `jsonschema` package is not a dependency, so each hostile case states the published schema's
verdict explicitly; both validation paths (one pass and two step) must reach it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.export import schema_for
from schemas.registry import Rejection, validate_inbound
from services.intake import domain
from services.intake.domain import Accepted, Refused, Verdict, judge

LIMIT = 256 * 1024
RECEIVED = {"service_area": "housing", "channel": "phone", "stage": "stage1", "serious": False}
QUESTION = {"question_id": "q1", "text": "ok?", "scale": "yes_no", "positive": ["yes"]}


def event(type_: str = "complaint.received", data: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    body = {"specversion": "1.0", "id": "e-1", "source": "crm/east", "type": type_, "subject": "c-1",
            "time": "2026-03-02T09:15:00+00:00", "data": RECEIVED if data is None else data}
    return {**body, **envelope}


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def with_extension(token: str) -> bytes:
    """A valid event with an extension attribute written as the literal JSON-ish `token`."""
    return raw(event(ext=0)).replace(b'"ext": 0', b'"ext": ' + token.encode())


# Records the published JSON Schema refuses (wrong JSON type, no RFC 3339 text, not JSON numbers).
SCHEMA_REFUSES: dict[str, bytes] = {
    "serious as the string yes": raw(event(data={**RECEIVED, "serious": "yes"})),
    "serious as the string true": raw(event(data={**RECEIVED, "serious": "true"})),
    "serious as 1": raw(event(data={**RECEIVED, "serious": 1})),
    "time as a JSON number": raw(event(time=1772442900)),
    "time as a float": raw(event(time=1772442900.5)),
    "time as digits": raw(event(time="1772442900")),
    "time without seconds": raw(event(time="2026-03-02T09:15Z")),
    "time with a space": raw(event(time="2026-03-02 09:15:00Z")),
    "time without offset": raw(event(time="2026-03-02T09:15:00")),
    "time as a date": raw(event(time="2026-03-02")),
    "extension NaN": with_extension("NaN"),
    "extension Infinity": with_extension("Infinity"),
    "extension -Infinity": with_extension("-Infinity"),
    "extension 1e400 (overflows to inf)": with_extension("1e400"),
    "extension -1e400": with_extension("-1e400"),
    "extension object": raw(event(ext={"a": 1})),
    "new_due as a number": raw(event("complaint.extension_agreed", {"stage": "stage1", "new_due": 0, "reason": "r"})),
    "new_due as digits": raw(event("complaint.extension_agreed",
                                   {"stage": "stage1", "new_due": "20260301", "reason": "r"})),
    "target as a string": raw(event("survey.defined", {"title": "t", "questions": [{**QUESTION, "target": "0.5"}]})),
    "target as a boolean": raw(event("survey.defined", {"title": "t", "questions": [{**QUESTION, "target": True}]})),
    "benchmark value as a string": raw(event("survey.defined", {"title": "t", "questions": [
        {**QUESTION, "benchmark": {"label": "national", "value": "0.7"}}]})),
    "answer 1e400": raw(event("survey.response.submitted", {"survey_id": "s", "respondent_type": "carer",
                                                            "answers": {"q1": 0}})).replace(b'"q1": 0', b'"q1": 1e400'),
}

# Records the published JSON Schema accepts, including the edges the strict rules must not lose.
SCHEMA_ACCEPTS: dict[str, bytes] = {
    "plain": raw(event()),
    "serious true": raw(event(data={**RECEIVED, "serious": True})),
    "time in Z with fraction": raw(event(time="2026-03-02T09:15:00.123456Z")),
    "time lower-case t and z": raw(event(time="2026-03-02t09:15:00z")),
    "time with a negative offset": raw(event(time="2026-03-02T09:15:00-05:30")),
    "finite float extension": with_extension("1.5e300"),
    "integer, text, boolean and null extensions": raw(event(a=1, b="x", c=True, d=None)),
    "target as an integer": raw(event("survey.defined", {"title": "t", "questions": [{**QUESTION, "target": 1}]})),
    "answer as an integral float": raw(event("survey.response.submitted", {"survey_id": "s", "respondent_type": "c",
                                                                           "answers": {"q1": 5.0}})),
}


class NoFastPath:
    """Stands in for the one-pass validator so that `judge` takes the two-step path."""

    def normalised(self, value: bytes) -> None:
        return None


def verdicts(value: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Verdict, Verdict]:
    """The verdict as intake reaches it (fast path first) and as the two-step path alone reaches it."""
    fast = judge(value, LIMIT)
    with monkeypatch.context() as patch:
        patch.setattr(domain, "ONE_PASS", NoFastPath())
        slow = judge(value, LIMIT)
    return fast, slow


@pytest.mark.parametrize("case", sorted(SCHEMA_REFUSES))
def test_what_the_published_schema_refuses_intake_refuses_on_both_paths(case: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = verdicts(SCHEMA_REFUSES[case], monkeypatch)
    assert isinstance(fast, Refused) and isinstance(slow, Refused), f"{case}: {fast}, {slow}"
    assert fast.reason == slow.reason and fast.reason in ("not_json", "not_cloudevent", "invalid_data")


@pytest.mark.parametrize("case", sorted(SCHEMA_ACCEPTS))
def test_what_the_published_schema_accepts_intake_accepts_on_both_paths(case: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = verdicts(SCHEMA_ACCEPTS[case], monkeypatch)
    assert isinstance(fast, Accepted) and isinstance(slow, Accepted), f"{case}: {fast}, {slow}"
    assert fast.body == slow.body and fast.canonical == slow.canonical


def test_the_published_schema_states_the_rules_intake_applies() -> None:
    schema = schema_for("complaint.received")
    assert schema["properties"]["data"]["properties"]["serious"]["type"] == "boolean"
    time = schema["properties"]["time"]
    assert (time["type"], time["format"]) == ("string", "date-time")
    assert time["pattern"].startswith("^(19|2[0-9])[0-9]{2}-") and time["not"] == {"pattern": "[\n\r]"}
    assert schema["additionalProperties"] == {"type": ["string", "number", "boolean", "null"]}


def test_an_extension_number_that_is_not_finite_says_so() -> None:
    verdict = judge(with_extension("1e400"), LIMIT)
    assert isinstance(verdict, Refused) and verdict.reason == "not_cloudevent"
    assert "ext" in verdict.detail and "finite" in verdict.detail


def test_serious_as_text_names_the_field() -> None:
    verdict = judge(raw(event(data={**RECEIVED, "serious": "yes"})), LIMIT)
    assert isinstance(verdict, Refused) and verdict.reason == "invalid_data" and "data.serious" in verdict.detail


def test_time_as_a_number_names_rfc_3339() -> None:
    verdict = judge(raw(event(time=1772442900)), LIMIT)
    assert isinstance(verdict, Refused) and verdict.reason == "not_cloudevent"
    assert "time" in verdict.detail and "RFC 3339" in verdict.detail


@pytest.mark.parametrize("source", ["casefeedback/escalation", "casefeedback/learning", "casefeedback",
                                    "CaseFeedback/intake"])
def test_an_inbound_event_may_not_claim_a_casefeedback_source(source: str) -> None:
    verdict = judge(raw(event(source=source)), LIMIT)
    assert isinstance(verdict, Refused) and verdict.reason == "not_allowed"
    assert "source" in verdict.detail and "casefeedback" in verdict.detail
    with pytest.raises(Rejection) as refused:  # `casefeedback emit` checks the same rule
        validate_inbound(raw(event(source=source)))
    assert refused.value.reason == "not_allowed"


def test_sources_that_merely_resemble_the_projects_are_accepted() -> None:
    for source in ("casefeedback-crm/east", "crm/casefeedback/east", "casefeedbacks"):
        assert isinstance(judge(raw(event(source=source)), LIMIT), Accepted), source


def test_derived_event_times_may_still_be_given_as_datetimes() -> None:
    """Services build derived events from Python datetimes; the strict text rule is for JSON input."""
    from schemas.payloads import DeadlinePayload

    due = datetime(2026, 3, 9, 17, 0, tzinfo=UTC)
    assert DeadlinePayload(stage="stage1", kind="respond", due=due).due == due
