"""Dead letters (contract section 5): every refused record, with a reason code and a detail people can act on.

A dead letter is always sendable, whatever the refused record held: its JSON (with every escape, e.g.
six bytes for each control character) plus its record key stay within `MAX_LETTER_BYTES`. Where the
original value would not fit, `value` is its longest prefix that does, marked `value_truncated` and
with the whole value's `value_sha256`. An oversized key is cut the same way (`key_truncated`); headers
are kept whole or left out (`headers_truncated`): the CloudEvents core attributes first, then the
others in the record's order, each that still fits, in the room the whole value leaves (at least an
eighth of the letter), so the value always keeps most of the room it needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any, get_args

from aiokafka import AIOKafkaProducer

from schemas.deadletters import Reason
from schemas.registry import TOPIC_DEADLETTER
from services.common.metrics import DEADLETTERS

REASONS: tuple[str, ...] = get_args(Reason)  # the schema's list (schemas/deadletters.py), the one definition
# The producer may send 2 MiB (services/common/kafka.py) but a Kafka broker left at its defaults
# takes 1 MiB per record (message.max.bytes); a letter under both, with room for the record's
# framing, is taken everywhere.
MAX_LETTER_BYTES = 1_000_000
DETAIL_CHARS = 2000
KEY_BYTES = 4096  # a key is a subject (at most 200 characters); more is not worth the value's room
# `"value": ""` with its encoding, truncation mark and hash, once the value's own length is counted.
VALUE_FRAMING = 256
# `"headers": []` with its encoding and truncation mark, before any header is counted.
HEADERS_FRAMING = len(', "headers": [], "headers_encoding": "base64", "headers_truncated": true')
# A binary-mode event's attributes: kept before any other header, so the event can still be told.
CORE_HEADERS = frozenset({"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time",
                          "content-type"})
Headers = Sequence[tuple[str, bytes | None]]
# Contract 1.1 section 7: every reason is exported from start-up (at 0), so its first increase is visible.
for _reason in REASONS:
    DEADLETTERS.labels(_reason)


def deadletter_value(reason: str, detail: str, topic: str, partition: int | None, offset: int | None,
                     key: bytes | None, value: bytes | None, *, headers: Headers | None = None,
                     max_bytes: int = MAX_LETTER_BYTES) -> dict[str, Any]:
    """The dead-letter JSON object for one refused record, within `max_bytes` once encoded with its key.

    `headers` are the refused record's (omitted from the letter when the caller no longer has them).
    """
    assert reason in REASONS, reason
    letter: dict[str, Any] = {"reason": reason, "detail": _prefix(detail[:DETAIL_CHARS], max_bytes // 8),
                              "topic": topic, "partition": partition, "offset": offset}
    letter.update(_key_fields(key, min(KEY_BYTES, max_bytes // 16)))
    if headers is not None:
        letter.update(_header_fields(headers, _header_room(letter, value, max_bytes)))
    letter.update(_value_fields(value, max_bytes - _size(letter) - VALUE_FRAMING))
    return letter


def encoded(letter: dict[str, Any]) -> bytes:
    """The dead letter as the record value sent to the broker."""
    return json.dumps(letter).encode()


def _size(letter: dict[str, Any]) -> int:
    """What the letter takes on the broker: its encoded value plus its record key."""
    return len(encoded(letter)) + len(_record_key(letter) or b"")


def _record_key(letter: dict[str, Any]) -> bytes | None:
    return letter["key"].encode() if letter.get("key") else None


def _json_len(text: str) -> int:
    return len(json.dumps(text))


def _prefix(text: str, budget: int) -> str:
    """The longest prefix of `text` whose JSON string (quotes and escapes included) fits in `budget` bytes."""
    if len(text) * 12 + 2 <= budget or _json_len(text) <= budget:  # no character escapes to more than 12
        return text
    low, high = 0, min(len(text), max(0, budget))  # a character takes at least one byte
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if _json_len(text[:middle]) <= budget else (low, middle - 1)
    return text[:low]


def _key_fields(key: bytes | None, budget: int) -> dict[str, Any]:
    """The key as text; cut so that it (in the letter and as the record key) fits in `budget` bytes."""
    if key is None:
        return {"key": None}
    text = key.decode("utf-8", errors="replace")
    # Half for the letter, half for the record key: no character takes more bytes in UTF-8 than escaped.
    cut = _prefix(text, budget // 2)
    return {"key": cut} if cut == text else {"key": cut, "key_truncated": True}


def _header_room(letter: dict[str, Any], value: bytes | None, max_bytes: int) -> int:
    """Bytes the headers may take: what the letter so far and the whole value leave, at least an eighth."""
    floor = max_bytes // 8
    if value is not None and len(value) >= max_bytes:  # the value is cut anyway: it takes the rest
        return floor
    value_room = len(json.dumps(_value_fields(value, max_bytes))) + VALUE_FRAMING
    return max(floor, max_bytes - _size(letter) - value_room)


def _header_fields(headers: Headers, budget: int) -> dict[str, Any]:
    """The headers as `[name, value]` pairs (values as text, else all base64), the whole ones that fit in `budget`."""
    try:
        pairs = [[name, None if v is None else v.decode("utf-8")] for name, v in headers]
        fields: dict[str, Any] = {}
    except UnicodeDecodeError:
        pairs = [[name, None if v is None else base64.b64encode(v).decode("ascii")] for name, v in headers]
        fields = {"headers_encoding": "base64"}
    kept = _fitting(pairs, budget - HEADERS_FRAMING)
    if len(kept) < len(pairs):
        fields["headers_truncated"] = True
    return {"headers": [pairs[i] for i in sorted(kept)], **fields}


def _fitting(pairs: list[list[str | None]], budget: int) -> set[int]:
    """Which pairs to keep within `budget`: the core attributes first, then the rest in order, each if it fits."""
    by_priority = sorted(range(len(pairs)), key=lambda i: str(pairs[i][0]).lower() not in CORE_HEADERS)
    kept: set[int] = set()
    for i in by_priority:
        cost = len(json.dumps(pairs[i])) + 2  # with the ", " before it
        if cost <= budget:
            kept.add(i)
            budget -= cost
    return kept


def _value_fields(value: bytes | None, budget: int) -> dict[str, Any]:
    """The value as text (or base64 when not UTF-8), cut to fit in `budget` bytes with its hash if it must be."""
    if value is None:
        return {"value": None}
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return _base64_fields(value, budget)
    cut = _prefix(text, budget)
    if len(cut) == len(text):
        return {"value": text}
    return {"value": cut, "value_truncated": True, "value_sha256": hashlib.sha256(value).hexdigest()}


def _base64_fields(value: bytes, budget: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"value_encoding": "base64"}
    room = max(0, (budget - 2) // 4 * 3)  # base64 writes 4 characters for every 3 bytes
    if len(value) <= room:
        return {"value": base64.b64encode(value).decode("ascii"), **fields}
    return {"value": base64.b64encode(value[:room]).decode("ascii"), **fields, "value_truncated": True,
            "value_sha256": hashlib.sha256(value).hexdigest()}


async def send_deadletters(producer: AIOKafkaProducer, letters: list[dict[str, Any]]) -> None:
    """Publish dead letters and wait until the broker has them all; count each by reason."""
    futures = []
    for letter in letters:
        futures.append(await producer.send(TOPIC_DEADLETTER, encoded(letter), key=_record_key(letter)))
    for future in futures:
        await future
    for letter in letters:
        DEADLETTERS.labels(letter["reason"]).inc()
