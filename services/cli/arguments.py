"""Argument types the commands share, with messages that say what was expected."""

from __future__ import annotations

import argparse
from datetime import date, datetime

from schemas.times import parse_time


def day(value: str) -> date:
    """A calendar date like 2011-12-31."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2011-12-31, got {value!r}") from None


def instant(value: str) -> datetime:
    """An RFC 3339 time with its UTC offset, like 2012-01-15T09:00:00+00:00."""
    try:
        moment = parse_time(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time like 2012-01-15T09:00:00+00:00, got {value!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset; add one, e.g. +00:00")
    return moment


def chain_head(value: str) -> tuple[int, bytes]:
    """A published chain head SEQ:HASH, like 604:3f2a... (the seq and its sha256 in 64 hex digits)."""
    seq, _, hex_hash = value.partition(":")
    try:
        head = int(seq), bytes.fromhex(hex_hash)
    except ValueError:
        head = (0, b"")
    if head[0] < 1 or len(head[1]) != 32:
        raise argparse.ArgumentTypeError(f"expected SEQ:HASH as `casefeedback replay` prints its chain head, "
                                         f"like 604:{'3f2a' * 16}, got {value!r}")
    return head
