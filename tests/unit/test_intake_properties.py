"""Property-based: whatever bytes or JSON arrive, intake's verdict is Accepted or a contract reason, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.deadletter import REASONS
from services.common.eventstore import canonical
from services.intake.domain import Accepted, Refused, judge

LIMIT = 64 * 1024
TYPES = ["complaint.received", "complaint.acknowledged", "complaint.responded", "compliment.received",
         "survey.defined", "survey.response.submitted", "learning.action.added", "deadline.breached", "nonsense"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


def _check(value: bytes) -> None:
    verdict = judge(value, LIMIT)
    if isinstance(verdict, Refused):
        assert verdict.reason in REASONS and verdict.detail
        return
    assert isinstance(verdict, Accepted)
    canonical(verdict.body)  # what the history stores can always be serialised
    assert "\x00" not in json.dumps(verdict.body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(value: bytes) -> None:
    _check(value)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_never_crashes(obj: Any) -> None:
    _check(json.dumps(obj).encode())


envelopes = st.fixed_dictionaries(
    {"specversion": st.sampled_from(["1.0", "0.3", 1]), "id": st.text(max_size=30) | st.integers(),
     "source": st.text(max_size=20), "type": st.sampled_from(TYPES) | st.text(max_size=20),
     "subject": st.text(max_size=20), "time": st.text(max_size=40) | st.datetimes().map(lambda d: d.isoformat()),
     "data": st.dictionaries(st.sampled_from(["stage", "outcome", "survey_id", "answers", "service_area",
                                              "channel", "serious", "about", "questions", "title"]),
                             json_values, max_size=6)},
    optional={"datacontenttype": st.text(max_size=20), "extra": json_values},
)


@settings(max_examples=400)
@given(envelopes)
def test_near_valid_envelopes_never_crash(obj: dict[str, Any]) -> None:
    _check(json.dumps(obj).encode())


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=200_000))
def test_deep_nesting_is_refused_with_a_reason(depth: int) -> None:
    value = b'{"specversion":"1.0","id":"x","source":"s","type":"complaint.closed","subject":"c",' \
            b'"time":"2026-01-01T00:00:00Z","data":{},"ext":' + b"[" * depth + b"]" * depth + b"}"
    verdict = judge(value, 10**6)
    assert isinstance(verdict, Refused) and verdict.reason in ("not_json", "not_cloudevent")


@given(st.integers(min_value=0, max_value=5000))
def test_size_limit_is_checked_before_parsing(extra: int) -> None:
    value = b"x" * (LIMIT + 1 + extra)  # not JSON: a parse would say not_json
    verdict = judge(value, LIMIT)
    assert isinstance(verdict, Refused) and verdict.reason == "too_large"
