"""Dead letters (contract section 5): every refused record, with a reason code and a detail people can act on."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.registry import TOPIC_DEADLETTER
from services.common.metrics import DEADLETTERS

REASONS = ("not_json", "not_cloudevent", "unknown_type", "invalid_data", "out_of_order", "too_large", "not_allowed")


def deadletter_value(reason: str, detail: str, topic: str, partition: int | None, offset: int | None,
                     key: bytes | None, value: bytes | None) -> dict[str, Any]:
    """The dead-letter JSON object for one refused record."""
    assert reason in REASONS, reason
    letter: dict[str, Any] = {"reason": reason, "detail": detail[:2000], "topic": topic, "partition": partition,
                              "offset": offset, "key": _text(key)}
    try:
        letter["value"] = value.decode("utf-8") if value is not None else None
    except UnicodeDecodeError:
        letter["value"] = base64.b64encode(value or b"").decode("ascii")
        letter["value_encoding"] = "base64"
    return letter


def _text(key: bytes | None) -> str | None:
    if key is None:
        return None
    return key.decode("utf-8", errors="replace")


async def send_deadletters(producer: AIOKafkaProducer, letters: list[dict[str, Any]]) -> None:
    """Publish dead letters and wait until the broker has them all; count each by reason."""
    futures = []
    for letter in letters:
        key = letter["key"].encode() if letter.get("key") else None
        futures.append(await producer.send(TOPIC_DEADLETTER, json.dumps(letter).encode(), key=key))
    for future in futures:
        await future
    for letter in letters:
        DEADLETTERS.labels(letter["reason"]).inc()
