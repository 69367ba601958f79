"""No record stops intake: a fault while judging one refuses that record, odd record metadata is tolerated."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord

from services.intake import domain
from services.intake.domain import Refused, judge
from services.intake.worker import Origin, record_time

VALID = (b'{"specversion":"1.0","id":"e","source":"crm","type":"complaint.closed","subject":"c",'
         b'"time":"2026-03-02T09:15:00Z","data":{}}')


class Exploding:
    """A validator with a fault no rule foresaw."""

    def normalised(self, value: bytes) -> None:
        raise LookupError("a fault inside validation")


def test_a_fault_while_judging_one_record_refuses_that_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(domain, "ONE_PASS", Exploding())
    verdict = judge(VALID, 1024)
    assert isinstance(verdict, Refused) and verdict.reason == "invalid_data"
    assert "LookupError" in verdict.detail


@pytest.mark.parametrize("timestamp_ms", [-5, 0, 2**62, 2**63 - 1])
def test_any_record_timestamp_a_producer_may_set_gives_a_record_time(timestamp_ms: int) -> None:
    assert datetime(1970, 1, 1, tzinfo=UTC) <= record_time(timestamp_ms) <= datetime(9999, 12, 31, tzinfo=UTC)


def test_a_refused_records_letter_keeps_its_headers_and_survives_a_far_future_timestamp() -> None:
    record = ConsumerRecord("feedback.complaints", 0, 9, 2**62, 0, b"k", b"\x01" * 400_000, None, 0, 400_000,
                            [("ce_id", b"e-1")])
    letter = Origin.of_record(record).letter("too_large", "record is too large")
    assert letter["headers"] == [["ce_id", "e-1"]] and letter["value_truncated"] is True
