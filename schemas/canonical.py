"""The one canonical JSON form of an event body: what the history stores and digests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

# One encoder for every call (json.dumps with options builds a new one each time).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical(body: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8; NaN and infinities refused (ValueError), as JSON has none."""
    return _ENCODER.encode(body).encode()


def canonical_float_free(body: Mapping[str, Any]) -> bytes:
    """`canonical(body)` for a body that holds no float, about seven times faster (orjson).

    For strings, keys, their order, integers, booleans and null orjson writes exactly the bytes of
    `canonical` (a property test holds the two equal); floats it writes differently (`1e-05` is
    `0.00001` there), hence the precondition, which the caller knows from the event's schema. What
    orjson refuses (an integer beyond 64 bits, a lone surrogate) goes to `canonical`, which writes
    the integer and raises what it raises for the surrogate.
    """
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        return canonical(body)
