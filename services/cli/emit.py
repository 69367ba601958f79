"""`casefeedback emit FILE`: validate CloudEvents from JSON lines and publish them to their inbound topics."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

from schemas.registry import Rejection, ValidEvent, inbound_topic, validate_inbound
from services.common import kafka
from services.common.settings import Settings

HELP = "publish CloudEvents from a JSON-lines FILE (or - for standard input) to the right inbound topics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSON lines, one CloudEvent per line; - reads standard input")


@dataclass(frozen=True)
class Line:
    """One valid line: its number, original bytes and validated event."""

    number: int
    raw: bytes
    event: ValidEvent


def read_lines(stream: BinaryIO) -> tuple[list[Line], list[str]]:
    """Validate every non-blank line; return the valid ones and one message per bad line."""
    good, bad = [], []
    for number, raw in enumerate(stream, start=1):
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            good.append(Line(number, raw, validate_inbound(raw)))
        except Rejection as rejection:
            bad.append(f"line {number}: {rejection.reason}: {rejection.detail}")
    return good, bad


async def publish(settings: Settings, lines: list[Line]) -> None:
    """Send every line to its inbound topic keyed by subject, and wait for the broker's acks."""
    producer = kafka.producer(settings.kafka)
    await producer.start()
    try:
        futures = []
        for line in lines:
            env = line.event.envelope
            futures.append(await producer.send(inbound_topic(env.type), line.raw, key=env.subject.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = settings.with_running_system()
    if args.file == "-":
        lines, errors = read_lines(sys.stdin.buffer)
    else:
        try:
            with open(args.file, "rb") as stream:
                lines, errors = read_lines(stream)
        except OSError as exc:
            print(f"casefeedback emit: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
    if errors:
        for message in errors:
            print(message, file=sys.stderr)
        print(f"casefeedback emit: {len(errors)} bad line(s); nothing was sent", file=sys.stderr)
        return 1
    asyncio.run(publish(settings, lines))
    counts = Counter(line.event.envelope.type for line in lines)
    summary = ", ".join(f"{t}: {n}" for t, n in sorted(counts.items()))
    print(f"sent {len(lines)} event(s){': ' + summary if summary else ''}")
    return 0
