"""`casefeedback deadletters`: what was refused and why, read from `feedback.deadletter`.

Reads the topic from the beginning up to the end offsets it has when the command starts, with no
consumer group (nothing is committed; any number of readers may look). Each dead letter shows its
reason, detail, the original record's topic, partition and offset, and the refused event's id, type
and subject where they can be read: from the value (structured mode) or from the `ce_` headers (binary
mode, contract 1.1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.registry import TOPIC_DEADLETTER
from services.common.errors import ConfigurationError, InfrastructureError
from services.common.settings import Settings

HELP = "what was refused and why: the dead letters on feedback.deadletter"
RELATIVE = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


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


def _text(value: Any, encoding: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if encoding != "base64":
        return value
    try:
        return base64.b64decode(value).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _from_headers(letter: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in letter.get("headers") or []:
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str):
            value = _text(pair[1], letter.get("headers_encoding"))
            if pair[0] in ("ce_id", "ce_type", "ce_subject") and value is not None:
                found[pair[0].removeprefix("ce_")] = value
    return found


def _from_value(letter: dict[str, Any]) -> dict[str, str]:
    text = _text(letter.get("value"), letter.get("value_encoding"))
    try:
        event = json.loads(text) if text is not None else None
    except ValueError:
        return {}
    if not isinstance(event, dict):
        return {}
    return {k: event[k] for k in ("id", "type", "subject") if isinstance(event.get(k), str)}


def describe(raw: bytes | None, written: datetime) -> dict[str, Any]:
    """One dead letter as shown: when written, reason, detail, where from, and the event's id/type/subject."""
    try:
        letter = json.loads(raw or b"")
    except ValueError:
        letter = None
    if not isinstance(letter, dict):
        return {"time": written.isoformat(timespec="seconds"), "reason": "(unreadable dead letter)", "detail": "",
                "topic": None, "partition": None, "offset": None, "id": None, "type": None, "subject": None}
    event = {**_from_headers(letter), **_from_value(letter)}
    return {"time": written.isoformat(timespec="seconds"), "reason": letter.get("reason"),
            "detail": letter.get("detail"), "topic": letter.get("topic"), "partition": letter.get("partition"),
            "offset": letter.get("offset"), "id": event.get("id"), "type": event.get("type"),
            "subject": event.get("subject")}


async def read_all(settings: Settings) -> list[dict[str, Any]]:
    """Every dead letter on the topic up to its end offsets now, in partition then offset order."""
    consumer = AIOKafkaConsumer(**settings.kafka.client_kwargs(), group_id=None, enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = [TopicPartition(TOPIC_DEADLETTER, p) for p in consumer.partitions_for_topic(TOPIC_DEADLETTER)
                      or await _partitions(consumer)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return await _drain(consumer, await consumer.end_offsets(partitions))
    except KafkaError as exc:
        raise InfrastructureError(f"broker {settings.kafka.bootstrap_servers} not reachable: {exc}") from None
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer) -> set[int]:
    await consumer.topics()  # refreshes the metadata
    return consumer.partitions_for_topic(TOPIC_DEADLETTER) or set()


async def _drain(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    left = {tp for tp, last in end.items() if last > 0}
    while left:
        batches = await consumer.getmany(*left, timeout_ms=1000)
        for tp, records in batches.items():
            shown += [describe(r.value, datetime.fromtimestamp(r.timestamp / 1000, UTC))
                      for r in records if r.offset < end[tp]]
        left = {tp for tp in left if await consumer.position(tp) < end[tp]}
    return shown


def select(letters: list[dict[str, Any]], since: datetime | None, reason: str | None) -> list[dict[str, Any]]:
    """The dead letters the filters keep, oldest first."""
    kept = [d for d in letters if (reason is None or d["reason"] == reason)
            and (since is None or datetime.fromisoformat(d["time"]) >= since.replace(microsecond=0))]
    return sorted(kept, key=lambda d: (d["time"], d["topic"] or "", d["offset"] or 0))


def render_table(letters: list[dict[str, Any]], read: int) -> str:
    """A heading line (shown of read), then one line per dead letter with its detail last."""
    lines = [f"{len(letters)} dead letter(s) shown, of {read} on {TOPIC_DEADLETTER}"]
    if letters:
        lines.append(f"{'written':25} {'reason':14} {'from':26} {'id':24} {'type':26} {'subject':20} detail")
    for d in letters:
        where = f"{d['topic']}/{d['partition']}@{d['offset']}" if d["topic"] else "-"
        lines.append(f"{d['time']:25} {d['reason'] or '-':14} {where:26} {d['id'] or '-':24} {d['type'] or '-':26} "
                     f"{d['subject'] or '-':20} {d['detail'] or ''}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    letters = asyncio.run(read_all(settings.with_running_system()))
    shown = select(letters, since, args.reason)
    if args.format == "json":
        sys.stdout.write(json.dumps(shown, indent=1) + "\n")
    else:
        sys.stdout.write(render_table(shown, len(letters)))
    return 0
