"""`casefeedback deadletters`: what was refused and why, read from `feedback.deadletter`.

Reads the topic from the beginning with no consumer group (nothing is committed; any number of readers
may look) until every partition has reached the end offset it reported and then stayed quiet for
`QUIET_S`: a broker may report an end offset that lags its last record. Each dead letter shows its
reason, detail, the original record's topic, partition and offset, and the refused event's id, type
and subject where they can be read: from the value (structured mode) or from the `ce_` headers (binary
mode, contract 1.1). Whatever a record holds, it becomes one row: members that cannot be read are
named in `unreadable`, text is cut to a bounded length and control characters are shown escaped.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import re
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from schemas.registry import TOPIC_DEADLETTER
from services.common.deadletter import DETAIL_CHARS
from services.common.errors import ConfigurationError, InfrastructureError
from services.common.settings import Settings

HELP = "what was refused and why: the dead letters on feedback.deadletter"
RELATIVE = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
ROW_KEYS = ("time", "reason", "detail", "topic", "partition", "offset", "id", "type", "subject", "unreadable")
FIELD_CHARS = 200
TEXT_MEMBERS = {"reason": FIELD_CHARS, "detail": DETAIL_CHARS, "topic": FIELD_CHARS}  # member -> characters shown
EVENT_FIELDS = ("id", "type", "subject")
# Characters a terminal may act on: controls (ANSI escapes), format (bidi overrides, zero-width),
# lone surrogates (which no encoder writes) and line or paragraph separators.
UNSAFE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
QUIET_S = 1.0  # no new record for this long after the reported end: the partition is read
MAX_READ_S = 30.0  # a topic still being written to stops the read here
POLL_MS = 200
_UNREADABLE = object()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="TIME",
                        help="only dead letters written at or after TIME (RFC 3339, a date, or 30m / 2h / 7d ago)")
    parser.add_argument("--reason", metavar="R", help="only this reason code (e.g. invalid_data)")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def parse_since(text: str, now: datetime) -> datetime:
    """`--since` as an instant: RFC 3339 (UTC when no offset), a date (its midnight UTC), or `2h` ago."""
    relative = RELATIVE.match(text.strip())
    if relative:
        return now - timedelta(**{UNITS[relative[2]]: int(relative[1])})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(f"--since {text!r}: give an RFC 3339 time, a date, or 30m, 2h, 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def shown(text: str, limit: int = FIELD_CHARS) -> str:
    """`text` safe on a terminal and bounded: unsafe characters escaped, cut at `limit` with a `…` mark."""
    escaped = "".join(_escape(c) for c in text[:limit + 1])
    return escaped if len(escaped) <= limit and len(text) <= limit else escaped[:limit] + "…"


def _escape(char: str) -> str:
    if unicodedata.category(char) not in UNSAFE:
        return char
    code = ord(char)
    return SHORT_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else
                                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def _loads(text: str | bytes) -> Any:
    """The parsed JSON, or `_UNREADABLE` when it is not JSON or nests deeper than the parser goes."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # a RecursionError is raised, cleanly, by the C parser's depth guard
        return _UNREADABLE


def _payload(value: Any, encoding: Any) -> str | bytes | None:
    """A letter's text member as written: the text itself, or its base64 decoded; None when it is neither."""
    if not isinstance(value, str) or encoding not in (None, "base64"):
        return None
    if encoding is None:
        return value
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        return None


def _written(timestamp_ms: int) -> str | None:
    if timestamp_ms < 0:  # Kafka's "no timestamp" is -1
        return None
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


def describe(raw: bytes | None, timestamp_ms: int) -> dict[str, Any]:
    """One record as a row of `ROW_KEYS`, whatever it holds: what can be read, and which members could not."""
    written = _written(timestamp_ms)
    unreadable = [] if written is not None else ["time"]
    letter = _loads(raw or b"")
    if not isinstance(letter, dict):
        return _row(written, {}, {}, [*unreadable, "letter"])
    members = _members(letter, unreadable)
    event = {**_from_headers(letter, unreadable), **_from_value(letter, unreadable)}
    return _row(written, members, event, unreadable)


def _row(written: str | None, members: dict[str, Any], event: dict[str, str], unreadable: list[str]) -> dict[str, Any]:
    values = {"time": written, **members, **{k: shown(v) for k, v in event.items()}, "unreadable": unreadable}
    return {key: values.get(key) for key in ROW_KEYS}


def _members(letter: dict[str, Any], unreadable: list[str]) -> dict[str, Any]:
    """The letter's own members (reason, detail, topic, partition, offset); those of a wrong type are unreadable."""
    found = {name: _text_member(letter.get(name), limit) for name, limit in TEXT_MEMBERS.items()}
    found |= {name: _count_member(letter.get(name)) for name in ("partition", "offset")}
    unreadable += [name for name, value in found.items() if value is _UNREADABLE]
    return {name: None if value is _UNREADABLE else value for name, value in found.items()}


def _text_member(value: Any, limit: int) -> Any:
    if value is None:
        return None
    return shown(value, limit) if isinstance(value, str) else _UNREADABLE


def _count_member(value: Any) -> Any:
    if value is None:
        return None
    return value if type(value) is int and 0 <= value < 2**63 else _UNREADABLE  # bool is no offset


def _as_text(payload: str | bytes | None) -> str | None:
    if isinstance(payload, bytes):
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return payload


def _from_headers(letter: dict[str, Any], unreadable: list[str]) -> dict[str, str]:
    """The event's id/type/subject from the refused record's `ce_` headers, where they can be read."""
    pairs, encoding = letter.get("headers"), letter.get("headers_encoding")
    if pairs is None:
        return {}
    if not isinstance(pairs, list) or encoding not in (None, "base64"):
        unreadable.append("headers")
        return {}
    readable = [pair for pair in pairs if _is_pair(pair, encoding)]
    if len(readable) < len(pairs):
        unreadable.append("headers")
    found: dict[str, str] = {}
    for name, value in readable:
        text = _as_text(_payload(value, encoding))
        if name in ("ce_id", "ce_type", "ce_subject") and text is not None:
            found[name.removeprefix("ce_")] = text
    return found


def _is_pair(pair: Any, encoding: Any) -> bool:
    return (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
            and (pair[1] is None or _payload(pair[1], encoding) is not None))


def _from_value(letter: dict[str, Any], unreadable: list[str]) -> dict[str, str]:
    """The event's id/type/subject from the refused value (structured mode), where it is a JSON object."""
    if letter.get("value") is None:
        return {}
    payload = _payload(letter["value"], letter.get("value_encoding"))
    if payload is None:
        unreadable.append("value")
        return {}
    event = _loads(payload)  # a refused value need not be JSON: then there is just no event to show
    if not isinstance(event, dict):
        return {}
    return {k: event[k] for k in EVENT_FIELDS if isinstance(event.get(k), str)}


@dataclass(frozen=True)
class Reading:
    """What one read of the topic saw: the rows, and per partition its first offset, where the read ended
    (past the reported end offset where records were found beyond it) and how many records it read."""

    letters: list[dict[str, Any]]
    first: dict[int, int]
    end: dict[int, int]
    read: dict[int, int]
    quiet: bool  # every partition reached its end and stayed quiet (else the time limit stopped the read)


@dataclass
class _Tally:
    letters: list[dict[str, Any]] = field(default_factory=list)
    read: dict[int, int] = field(default_factory=dict)
    after: dict[int, int] = field(default_factory=dict)  # partition -> the offset after the last one read

    def add(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            self.letters.append(describe(record.value, record.timestamp))
            self.read[record.partition] = self.read.get(record.partition, 0) + 1
            self.after[record.partition] = max(self.after.get(record.partition, 0), record.offset + 1)


async def read_all(settings: Settings) -> Reading:
    """Every dead letter on the topic, read until each partition is quiet past its reported end offset."""
    consumer = AIOKafkaConsumer(**settings.kafka.client_kwargs(), group_id=None, enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = [TopicPartition(TOPIC_DEADLETTER, p) for p in consumer.partitions_for_topic(TOPIC_DEADLETTER)
                      or await _partitions(consumer)]
        if not partitions:
            return Reading([], {}, {}, {}, True)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        first = await consumer.beginning_offsets(partitions)
        return await drain(consumer, {tp.partition: at for tp, at in first.items()},
                           await consumer.end_offsets(partitions))
    except KafkaError as exc:
        raise InfrastructureError(f"broker {settings.kafka.bootstrap_servers} not reachable: {exc}") from None
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer) -> set[int]:
    await consumer.topics()  # refreshes the metadata
    return consumer.partitions_for_topic(TOPIC_DEADLETTER) or set()


async def drain(consumer: AIOKafkaConsumer, first: dict[int, int], end: dict[TopicPartition, int],
                quiet_s: float = QUIET_S, limit_s: float = MAX_READ_S) -> Reading:
    """Read until every partition is at its reported `end` and no record came for `quiet_s`, or `limit_s` passed."""
    tally = _Tally()
    started = news = time.monotonic()
    quiet = False
    while not quiet and time.monotonic() - started < limit_s:
        batches = await consumer.getmany(*end, timeout_ms=POLL_MS)
        for records in batches.values():
            tally.add(records)
        if any(batches.values()) or not await _reached(consumer, end):
            news = time.monotonic()
        quiet = time.monotonic() - news >= quiet_s
    return Reading(tally.letters, first,
                   {tp.partition: max(at, tally.after.get(tp.partition, 0)) for tp, at in end.items()},
                   {tp.partition: tally.read.get(tp.partition, 0) for tp in end}, quiet)


async def _reached(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, at in end.items():
        if await consumer.position(tp) < at:
            return False
    return True


def summary(reading: Reading) -> str:
    """One line on what the read saw: records read, up to which offsets, and why that may be fewer than were sent."""
    if not reading.end:
        return f"read 0 record(s) from {TOPIC_DEADLETTER}: the topic has no partitions"
    read = sum(reading.read.values())
    parts = [f"read {read} record(s) from {TOPIC_DEADLETTER} up to offsets {_offsets(reading.end)} (partition:offset)"]
    gone = sum(reading.first.values())
    if gone:
        parts.append(f"the {gone} before offsets {_offsets(reading.first)} are gone (retention)")
    holes = sum(reading.end.values()) - gone - read
    if holes > 0:
        parts.append(f"{holes} offset(s) in between held no record (compacted, or transaction markers)")
    if not reading.quiet:
        parts.append(f"stopped after {MAX_READ_S:.0f} s with records still arriving: run it again for the rest")
    return "; ".join(parts)


def _offsets(by_partition: dict[int, int]) -> str:
    return " ".join(f"{p}:{at}" for p, at in sorted(by_partition.items()))


def select(letters: list[dict[str, Any]], since: datetime | None, reason: str | None) -> list[dict[str, Any]]:
    """The dead letters the filters keep, oldest first (those with no readable time first, and never `--since`)."""
    kept = [d for d in letters
            if (reason is None or d["reason"] == reason) and (since is None or _at_or_after(d, since))]
    return sorted(kept, key=lambda d: (d["time"] or "", d["topic"] or "", d["offset"] or 0))


def _at_or_after(letter: dict[str, Any], since: datetime) -> bool:
    return letter["time"] is not None and datetime.fromisoformat(letter["time"]) >= since.replace(microsecond=0)


def render_table(letters: list[dict[str, Any]], read: int) -> str:
    """A heading line (shown of read), then one line per dead letter with its detail last."""
    lines = [f"{len(letters)} dead letter(s) shown, of {read} on {TOPIC_DEADLETTER}"]
    if letters:
        lines.append(f"{'written':25} {'reason':14} {'from':26} {'id':24} {'type':26} {'subject':20} detail")
    lines += [_line(d) for d in letters]
    return "\n".join(lines) + "\n"


def _line(letter: dict[str, Any]) -> str:
    def cell(key: str) -> str:
        if letter[key] is not None:
            return str(letter[key])
        return "?" if key in letter["unreadable"] or "letter" in letter["unreadable"] else "-"

    where = "-" if {cell("topic"), cell("partition"), cell("offset")} == {"-"} else \
        f"{cell('topic')}/{cell('partition')}@{cell('offset')}"
    reason = "(unreadable)" if "letter" in letter["unreadable"] else cell("reason")
    return (f"{cell('time'):25} {reason:14} {where:26} {cell('id'):24} {cell('type'):26} {cell('subject'):20} "
            f"{letter['detail'] or ''}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    reading = asyncio.run(read_all(settings.with_running_system()))
    rows = select(reading.letters, since, args.reason)
    if isinstance(sys.stdout, io.TextIOWrapper):  # a terminal that cannot show a character gets its escape
        sys.stdout.reconfigure(errors="backslashreplace")
    table = render_table(rows, len(reading.letters))
    sys.stdout.write(json.dumps(rows, indent=1) + "\n" if args.format == "json" else table)
    print(summary(reading), file=sys.stderr)
    return 0
