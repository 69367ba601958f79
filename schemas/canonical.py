"""The one canonical JSON form of an event body: what the history stores and digests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# One encoder for every call (json.dumps with options builds a new one each time).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical(body: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8; NaN and infinities refused (ValueError), as JSON has none."""
    return _ENCODER.encode(body).encode()
