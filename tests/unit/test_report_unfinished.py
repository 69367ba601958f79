"""`report` says so when its period has not ended: the figures are provisional."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.audit.report import Period
from services.cli.report import unfinished_note


def test_a_period_still_running_is_said_to_be_unfinished() -> None:
    note = unfinished_note(Period(date(2026, 1, 1), date(2026, 12, 31)), datetime(2026, 6, 1, 12, tzinfo=UTC))
    assert note is not None and note.startswith("The period has not ended: it runs to 2026-12-31")


def test_an_ended_period_says_nothing_more() -> None:
    assert unfinished_note(Period(date(2025, 1, 1), date(2025, 12, 31)), datetime(2026, 1, 1, tzinfo=UTC)) is None
