"""The record size limit covers the whole record (key, value and headers), in either content mode, and an
accepted event is never bigger in the history than the limit."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from services.intake.binary import Headers
from services.intake.domain import Accepted, Refused, judge

LIMIT = 262_144
COMPLAINTS = "feedback.complaints"
DATA = {"service_area": "housing", "channel": "phone", "stage": "stage1", "serious": False}
STRUCTURED = {"specversion": "1.0", "id": "e1", "source": "crm/east", "type": "complaint.received", "subject": "c1",
              "time": "2026-03-02T09:15:00+00:00", "datacontenttype": "application/json", "data": DATA}


def core_headers(case: str = "c1") -> list[tuple[str, bytes | None]]:
    """The binary-mode headers of a valid complaint.received."""
    return [("ce_specversion", b"1.0"), ("ce_id", b"e1"), ("ce_source", b"crm/east"),
            ("ce_type", b"complaint.received"), ("ce_subject", case.encode()),
            ("ce_time", b"2026-03-02T09:15:00+00:00"), ("content-type", b"application/json")]


def extensions(n: int, size: int, fill: bytes = b"x") -> list[tuple[str, bytes | None]]:
    return [(f"ce_ext{i}", fill * size) for i in range(n)]


def header_bytes(headers: Headers) -> int:
    return sum(len(name.encode()) + len(value or b"") for name, value in headers)


def refused(value: bytes | None, headers: Headers = (), key: bytes | None = None, limit: int = LIMIT) -> Refused:
    verdict = judge(value, limit, COMPLAINTS, headers, key=key)
    assert isinstance(verdict, Refused), verdict
    return verdict


def test_a_binary_record_with_300_large_extension_headers_is_too_large_and_says_its_sizes() -> None:
    headers = core_headers() + extensions(300, 10_000)
    value = json.dumps(DATA).encode()
    verdict = refused(value, headers, b"c1-key-12345")
    total = 12 + len(value) + header_bytes(headers)
    assert total > 3_000_000
    assert verdict.reason == "too_large"
    assert verdict.detail == (f"record is {total:,} bytes (key 12, value {len(value):,}, headers "
                              f"{header_bytes(headers):,}); the limit is 262,144")


def test_a_structured_record_whose_headers_are_large_is_too_large_too() -> None:
    verdict = refused(json.dumps(STRUCTURED).encode(), [("trace", b"t" * LIMIT)])
    assert verdict.reason == "too_large" and "headers 262,149" in verdict.detail


def test_the_key_counts_towards_the_limit() -> None:
    value = json.dumps(STRUCTURED).encode()
    verdict = refused(value, key=b"k" * (LIMIT - len(value) + 1))
    assert verdict.reason == "too_large" and f"record is {LIMIT + 1:,} bytes" in verdict.detail


def test_a_tombstone_with_large_headers_is_too_large() -> None:
    assert refused(None, extensions(30, 10_000)).reason == "too_large"


def test_a_record_exactly_at_the_limit_is_judged_on_its_content() -> None:
    value = json.dumps(STRUCTURED).encode()
    headers = [("trace", b"t" * 100)]
    padding = b" " * (LIMIT - len(value) - header_bytes(headers) - 2)  # whitespace: not in the normalised event
    assert isinstance(judge(value + padding, LIMIT, COMPLAINTS, headers, key=b"c1"), Accepted)
    assert refused(value + padding + b" ", headers, b"c1").detail.startswith(f"record is {LIMIT + 1:,} bytes")


def test_a_binary_record_at_the_limit_whose_event_is_bigger_once_normalised_is_too_large() -> None:
    value = json.dumps(DATA).encode()
    padding = LIMIT - len(value) - header_bytes(core_headers()) - len("ce_pad") - 2
    verdict = refused(value, [*core_headers(), ("ce_pad", b"p" * padding)], b"c1")
    assert verdict.reason == "too_large" and verdict.detail.startswith("event is ")


def test_headers_whose_json_escapes_would_make_the_event_bigger_than_the_limit_are_too_large() -> None:
    headers = [*core_headers(), ("ce_quote", b'"' * 200_000)]  # within the limit as bytes, twice that as JSON
    verdict = refused(json.dumps(DATA).encode(), headers)
    assert verdict.reason == "too_large" and "262,144" in verdict.detail and verdict.id == "e1"


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=3000), st.sampled_from([b"x", b'"', b"\\", b"\x01", "é".encode()]))
def test_an_accepted_binary_event_is_never_bigger_in_the_history_than_the_limit(size: int, fill: bytes) -> None:
    limit = 4096
    verdict = judge(json.dumps(DATA).encode(), limit, COMPLAINTS, [*core_headers(), ("ce_note", fill * size)])
    if isinstance(verdict, Accepted):
        assert len(verdict.canonical) <= limit
    else:
        assert verdict.reason == "too_large", verdict


def test_a_small_binary_record_is_still_accepted() -> None:
    assert isinstance(judge(json.dumps(DATA).encode(), LIMIT, COMPLAINTS, core_headers(), key=b"c1"), Accepted)

