"""The dead-letter reason codes (contract section 5) are one list: the schema's, the counter's, AsyncAPI's."""

from __future__ import annotations

from typing import get_args

import yaml
from prometheus_client import REGISTRY

from schemas.deadletters import DeadLetter, Reason
from schemas.export import ASYNCAPI_PATH
from services.common.deadletter import REASONS, deadletter_value


def test_internal_is_a_reason_a_follower_of_the_history_can_letter_with() -> None:
    letter = deadletter_value("internal", "escalation: KeyError 'stage' applying complaint.escalated",
                              "casefeedback.events", 2, 41, b"case-1", b"{}")
    assert DeadLetter.model_validate(letter).reason == "internal"


def test_the_counter_knows_exactly_the_schemas_reasons_and_exports_each_at_zero() -> None:
    assert tuple(REASONS) == get_args(Reason)
    for reason in get_args(Reason):
        assert REGISTRY.get_sample_value("casefeedback_deadletter_total", {"reason": reason}) is not None, reason


def test_the_asyncapi_document_lists_every_reason() -> None:
    document = yaml.safe_load(ASYNCAPI_PATH.read_text())
    listed = document["components"]["schemas"]["DeadLetter"]["properties"]["reason"]["enum"]
    assert listed == list(get_args(Reason))
