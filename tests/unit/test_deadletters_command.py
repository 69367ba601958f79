"""`casefeedback deadletters`: any dead letter, however hostile, becomes one safe row; the read says what it saw."""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.cli.deadletters import ROW_KEYS, Reading, describe, render_table, select, summary
from services.common.deadletter import DETAIL_CHARS, deadletter_value, encoded

WRITTEN_MS = 1_773_133_331_000  # 2026-03-10T09:02:11Z
NESTED = b"[" * 2000 + b"]" * 2000
UNSAFE = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # control, format (bidi, zero-width), lone surrogates, line breaks


def letter(**fields: Any) -> bytes:
    """A dead letter as the services write it, with `fields` replacing or adding to its members."""
    base = deadletter_value("not_json", "value is not JSON", "feedback.complaints", 1, 3, b"case-1", b"{")
    return json.dumps({**base, **fields}).encode()


def safe(text: str) -> bool:
    return not any(unicodedata.category(c) in UNSAFE for c in text)


def test_a_deeply_nested_refused_value_is_shown_with_its_reason_and_no_event() -> None:
    raw = encoded(deadletter_value("not_json", "nests too deeply", "feedback.complaints", 0, 9, None, NESTED))
    row = describe(raw, WRITTEN_MS)
    assert (row["reason"], row["topic"], row["offset"], row["id"]) == ("not_json", "feedback.complaints", 9, None)
    assert row["unreadable"] == []


def test_a_dead_letter_that_is_itself_deeply_nested_is_one_unreadable_row() -> None:
    row = describe(NESTED, WRITTEN_MS)
    assert row["unreadable"] == ["letter"] and row["reason"] is None
    assert row["time"] == "2026-03-10T09:02:11+00:00"


def test_members_of_the_wrong_type_are_marked_unreadable_and_the_rest_is_shown() -> None:
    raw = letter(reason=7, headers="ce_id", partition="1", offset=True, value="!!not base64", value_encoding="base64")
    row = describe(raw, WRITTEN_MS)
    assert row["topic"] == "feedback.complaints" and row["detail"] == "value is not JSON"
    assert row["reason"] is None and row["partition"] is None and row["offset"] is None
    assert row["unreadable"] == ["reason", "partition", "offset", "headers", "value"]


def test_terminal_escapes_and_line_breaks_in_a_detail_are_shown_escaped() -> None:
    row = describe(letter(detail="\x1b[2J\x1b]0;owned\x07\nsecond\u202eline"), WRITTEN_MS)
    assert row["detail"] == "\\x1b[2J\\x1b]0;owned\\x07\\nsecond\\u202eline"


def test_huge_strings_are_cut_and_marked() -> None:
    row = describe(letter(detail="d" * 500_000, reason="r" * 10_000), WRITTEN_MS)
    assert len(row["detail"]) == DETAIL_CHARS + 1 and row["detail"].endswith("…")
    assert len(row["reason"]) < 300 and row["reason"].endswith("…")


def test_the_event_is_read_from_valid_ce_headers_even_when_other_pairs_are_junk() -> None:
    headers = [["ce_id", "e-1"], 5, ["ce_type"], [None, "x"], ["ce_subject", None], ["ce_subject", "case-9"]]
    row = describe(letter(headers=headers), WRITTEN_MS)
    assert (row["id"], row["type"], row["subject"]) == ("e-1", None, "case-9")
    assert row["unreadable"] == ["headers"]  # the junk pairs


def test_base64_headers_and_values_are_decoded() -> None:
    b64 = base64.b64encode
    event = json.dumps({"id": "e-2", "type": "complaint.received", "subject": "c-2"}).encode() + b"\xff"
    row = describe(letter(headers=[["ce_id", b64(b"e-1").decode()]], headers_encoding="base64",
                          value=b64(event[:-1]).decode(), value_encoding="base64"), WRITTEN_MS)
    assert (row["id"], row["type"], row["subject"], row["unreadable"]) == ("e-2", "complaint.received", "c-2", [])


def test_a_timestamp_out_of_any_calendar_is_an_unreadable_time() -> None:
    row = describe(letter(), 2**63 - 1)
    assert row["time"] is None and row["unreadable"] == ["time"] and row["reason"] == "not_json"


def test_rows_without_a_time_sort_first_and_never_pass_since() -> None:
    from datetime import UTC, datetime

    rows = [describe(letter(), WRITTEN_MS), describe(letter(), -(2**63))]
    assert [r["time"] for r in select(rows, None, None)] == [None, "2026-03-10T09:02:11+00:00"]
    assert len(select(rows, datetime(2026, 1, 1, tzinfo=UTC), None)) == 1


# Hostile material: JSON of every kind (NaN, huge numbers, lone surrogates, control characters, deep nesting).
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.sampled_from(
    ["\x1b[31m", "\u202e", "\ud800", "[" * 3000, "x" * 5000, "ce_id", "base64", "not_json"])
JSONISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)
VALUES = JSONISH | st.sampled_from([NESTED.decode(), "{" * 3000, base64.b64encode(NESTED).decode(), "@@@"])
HEADERS = st.lists(st.lists(st.sampled_from(["ce_id", "ce_type", "ce_subject"]) | JSONISH, max_size=3), max_size=5)
MEMBERS = {"reason": JSONISH, "detail": JSONISH, "topic": JSONISH, "partition": JSONISH, "offset": JSONISH,
           "headers": HEADERS | JSONISH, "headers_encoding": st.just("base64") | JSONISH, "value": VALUES,
           "value_encoding": st.just("base64") | JSONISH, "key": JSONISH}
LETTERS = st.fixed_dictionaries({}, optional=MEMBERS).map(lambda d: json.dumps(d).encode())
RAWS = LETTERS | JSONISH.map(lambda v: json.dumps(v).encode()) | st.binary() | st.none() | st.just(NESTED)


@settings(max_examples=400, deadline=None)
@given(RAWS, st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_any_record_becomes_one_safe_bounded_row(raw: bytes | None, timestamp_ms: int) -> None:
    row = describe(raw, timestamp_ms)
    assert tuple(row) == ROW_KEYS
    for key in ("time", "reason", "detail", "topic", "id", "type", "subject"):
        assert row[key] is None or (isinstance(row[key], str) and safe(row[key])), (key, row[key])
        assert row[key] is None or len(row[key]) <= DETAIL_CHARS + 1
    for key in ("partition", "offset"):
        assert row[key] is None or (type(row[key]) is int and row[key] >= 0)
    assert all(isinstance(part, str) for part in row["unreadable"])
    table = render_table(select([row], None, None), 1)
    assert len(table.splitlines()) == 3 and safe(table.replace("\n", "")) and table.encode("utf-8")
    assert json.loads(json.dumps([row])) == [row]


def test_the_summary_names_what_was_read_and_up_to_where() -> None:
    reading = Reading(letters=[], first={0: 0, 1: 0}, end={0: 5, 1: 13}, read={0: 5, 1: 13}, quiet=True)
    assert summary(reading) == "read 18 record(s) from feedback.deadletter up to offsets 0:5 1:13 (partition:offset)"


def test_the_summary_says_when_records_expired_or_offsets_held_none() -> None:
    reading = Reading(letters=[], first={0: 2, 1: 0}, end={0: 5, 1: 13}, read={0: 3, 1: 12}, quiet=True)
    assert summary(reading) == (
        "read 15 record(s) from feedback.deadletter up to offsets 0:5 1:13 (partition:offset); "
        "the 2 before offsets 0:2 1:0 are gone (retention); 1 offset(s) in between held no record "
        "(compacted, or transaction markers)")


def test_the_summary_says_when_records_were_still_arriving() -> None:
    reading = Reading(letters=[], first={0: 0}, end={0: 900}, read={0: 900}, quiet=False)
    assert summary(reading).endswith("; stopped after 30 s with records still arriving: run it again for the rest")


class LaggingConsumer:
    """A partition whose reported end offset (2) lags the records it serves (3): the embedded broker can do this."""

    def __init__(self) -> None:
        from aiokafka.structs import ConsumerRecord, TopicPartition

        self.tp = TopicPartition("feedback.deadletter", 0)
        self.served = [ConsumerRecord(self.tp.topic, 0, n, WRITTEN_MS, 0, None, letter(offset=n), None, 0, 0, ())
                       for n in range(3)]
        self.at = 0

    async def getmany(self, *partitions: Any, timeout_ms: int = 0) -> dict[Any, list[Any]]:
        batch, self.at = self.served[self.at:self.at + 2], min(self.at + 2, len(self.served))
        return {self.tp: batch} if batch else {}

    async def position(self, tp: Any) -> int:
        return self.at


async def test_records_past_a_lagging_end_offset_are_read_until_the_partition_is_quiet() -> None:
    from services.cli.deadletters import drain

    consumer = LaggingConsumer()
    reading = await drain(consumer, {0: 0}, {consumer.tp: 2}, quiet_s=0.2)
    assert [row["offset"] for row in reading.letters] == [0, 1, 2]
    assert (reading.read, reading.end, reading.quiet) == ({0: 3}, {0: 3}, True)
