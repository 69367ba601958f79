"""Dead letters (contract section 5): always sendable whatever the record held, headers kept."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.deadletter import MAX_LETTER_BYTES, deadletter_value, encoded

TOPIC = "feedback.complaints"


def size(letter: dict[str, Any]) -> int:
    """What the letter takes on the broker: its JSON value plus its record key."""
    key = letter["key"].encode() if letter.get("key") else b""
    return len(encoded(letter)) + len(key)


def original(letter: dict[str, Any]) -> bytes:
    """The (possibly cut) original value the letter carries, as bytes."""
    if letter.get("value_encoding") == "base64":
        return base64.b64decode(letter["value"])
    return str(letter["value"]).encode()


def test_a_small_record_is_carried_whole_with_no_truncation_marks() -> None:
    letter = deadletter_value("not_json", "bad", TOPIC, 0, 7, b"case-1", b"hello")
    assert letter["value"] == "hello" and letter["key"] == "case-1"
    assert "value_truncated" not in letter and "value_sha256" not in letter


def test_control_bytes_that_escape_sixfold_are_cut_to_fit_the_limit() -> None:
    value = b"\x01" * 400_000  # 2.4 MB once JSON-escaped: more than the producer may send
    letter = deadletter_value("too_large", "record is too large", TOPIC, 0, 1, b"k", value)
    assert size(letter) <= MAX_LETTER_BYTES
    assert letter["value_truncated"] is True
    assert letter["value_sha256"] == hashlib.sha256(value).hexdigest()
    assert value.startswith(original(letter)) and len(original(letter)) > 100_000


def test_a_value_near_the_brokers_limit_is_cut_and_still_decodes_as_a_prefix() -> None:
    value = ("é\x02" * 500_000).encode()
    letter = deadletter_value("too_large", "d", TOPIC, 0, 1, None, value)
    assert size(letter) <= MAX_LETTER_BYTES and letter["value_truncated"] is True
    assert value.startswith(original(letter))


def test_binary_values_are_cut_in_base64_and_hashed_in_full() -> None:
    value = b"\xff\xfe" * 700_000
    letter = deadletter_value("not_json", "d", TOPIC, 0, 1, None, value)
    assert letter["value_encoding"] == "base64" and letter["value_truncated"] is True
    assert size(letter) <= MAX_LETTER_BYTES
    assert value.startswith(original(letter))
    assert letter["value_sha256"] == hashlib.sha256(value).hexdigest()


def test_headers_are_kept_as_text_pairs() -> None:
    headers = [("ce_id", b"e-1"), ("ce_type", b"complaint.received"), ("empty", None)]
    letter = deadletter_value("not_json", "d", TOPIC, 0, 1, None, b"x", headers=headers)
    assert letter["headers"] == [["ce_id", "e-1"], ["ce_type", "complaint.received"], ["empty", None]]
    assert "headers_encoding" not in letter


def test_headers_that_are_not_utf8_are_all_base64() -> None:
    letter = deadletter_value("not_json", "d", TOPIC, 0, 1, None, b"x", headers=[("a", b"ok"), ("b", b"\xff")])
    assert letter["headers_encoding"] == "base64"
    assert letter["headers"] == [["a", base64.b64encode(b"ok").decode()], ["b", base64.b64encode(b"\xff").decode()]]


def test_a_letter_without_headers_keeps_its_version_1_shape() -> None:
    letter = deadletter_value("out_of_order", "d", "casefeedback.events", 2, None, b"c", b"{}")
    assert "headers" not in letter


def test_huge_key_headers_and_detail_cannot_make_a_letter_unsendable() -> None:
    key = b"\x03" * 600_000
    headers = [(f"h{i}", b"\x04" * 50_000) for i in range(40)]
    letter = deadletter_value("too_large", "\x05" * 100_000, TOPIC, 0, 1, key, b"\x06" * 900_000, headers=headers)
    assert size(letter) <= MAX_LETTER_BYTES
    assert letter["value_sha256"] == hashlib.sha256(b"\x06" * 900_000).hexdigest()
    assert letter["key_truncated"] is True and letter["headers_truncated"] is True


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000) | st.text(max_size=3000).map(lambda s: s.encode("utf-8", "surrogatepass")),
       st.binary(max_size=300), st.integers(min_value=1200, max_value=6000))
def test_every_letter_fits_whatever_the_bound(value: bytes, key: bytes, bound: int) -> None:
    letter = deadletter_value("not_json", "d", TOPIC, 0, 1, key, value, headers=[("h", key)], max_bytes=bound)
    assert size(letter) <= bound
    assert value.startswith(original(letter))
    if letter.get("value_truncated"):
        assert letter["value_sha256"] == hashlib.sha256(value).hexdigest()
    else:
        assert original(letter) == value
    json.loads(encoded(letter))


async def test_the_letter_bound_leaves_room_under_the_producers_max_request_size() -> None:
    from services.common import kafka
    from services.common.settings import KafkaSettings

    producer = kafka.producer(KafkaSettings(bootstrap_servers="127.0.0.1:9"))  # never started: no connection
    assert producer._max_request_size >= MAX_LETTER_BYTES + 1024  # the record's framing fits beside it


CORE = [("ce_specversion", b"1.0"), ("ce_id", b"e-1"), ("ce_source", b"crm/east"), ("ce_type", b"complaint.received"),
        ("ce_subject", b"case-1"), ("ce_time", b"2026-03-02T09:15:00+00:00")]


def test_a_record_with_3_mb_of_headers_keeps_the_core_attributes_and_as_many_whole_headers_as_fit() -> None:
    extensions = [(f"ce_ext{i}", b"\x07" * 10_000) for i in range(300)]  # 60 kB each once JSON-escaped
    headers = [*extensions[:150], *CORE, *extensions[150:], ("content-type", b"application/json")]
    letter = deadletter_value("too_large", "record is too large", TOPIC, 0, 1, b"case-1", b'{"a": 1}',
                              headers=headers)
    assert size(letter) <= MAX_LETTER_BYTES and letter["headers_truncated"] is True
    kept = [(name, value.encode()) for name, value in letter["headers"]]
    assert set(CORE) <= set(kept) and ("content-type", b"application/json") in kept
    assert set(kept) <= set(headers)  # each header kept whole
    left_out = next([name, value.decode()] for name, value in headers if (name, value) not in kept)
    assert size({**letter, "headers": [*letter["headers"], left_out]}) > MAX_LETTER_BYTES  # no other one fits
    assert letter["value"] == '{"a": 1}'


def test_kept_headers_stay_in_the_records_order() -> None:
    extensions = [(f"ce_ext{i}", b"x" * 10_000) for i in range(300)]
    headers = [*extensions, *CORE]
    letter = deadletter_value("too_large", "d", TOPIC, 0, 1, None, b"{}", headers=headers)
    names = [name for name, _ in letter["headers"]]
    assert names == [name for name, _ in headers if name in names]
    assert names[-len(CORE):] == [name for name, _ in CORE] and len(names) > 90


def test_one_huge_header_is_left_out_and_the_smaller_ones_after_it_are_kept() -> None:
    headers = [("ce_huge", b"h" * 3_000_000), *CORE]
    letter = deadletter_value("too_large", "d", TOPIC, 0, 1, None, b"{}", headers=headers)
    assert letter["headers"] == [[name, value.decode()] for name, value in CORE]
    assert letter["headers_truncated"] is True and size(letter) <= MAX_LETTER_BYTES
