"""`casefeedback emit FILE`: validate CloudEvents from JSON lines and publish them to their inbound topics."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

from aiokafka.errors import KafkaError

from schemas.registry import Rejection, ValidEvent, inbound_topic, validate_inbound
from services.common import kafka
from services.common.errors import InfrastructureError
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
    try:
        await producer.start()
        futures = []
        for line in lines:
            env = line.event.envelope
            futures.append(await producer.send(inbound_topic(env.type), line.raw, key=env.subject.encode()))
        await asyncio.gather(*futures)
    except (KafkaError, OSError) as exc:
        raise InfrastructureError(
            f"broker {settings.kafka.bootstrap_servers} not reachable ({type(exc).__name__}); nothing may have "
            "been sent: is `casefeedback up` running, or is KAFKA_BOOTSTRAP_SERVERS right?") from None
    finally:
        await asyncio.wait_for(producer.stop(), 5)


def stale_run_file(settings: Settings) -> str | None:
    """Why the run file cannot be trusted (its `casefeedback up` is no longer running), or None."""
    try:
        pid = int(json.loads(settings.run_file.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
        return None
    except ProcessLookupError:
        return (f"{settings.run_file} is stale: the `casefeedback up` that wrote it (pid {pid}) is not running; "
                "start `casefeedback up`, or set KAFKA_BOOTSTRAP_SERVERS")
    except PermissionError:  # alive, another user's
        return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    stale = None if settings.kafka.bootstrap_servers else stale_run_file(settings)
    if stale:
        print(f"casefeedback emit: {stale}", file=sys.stderr)
        return 2
    settings = settings.with_running_system()
    # The client's own log lines would repeat, as a traceback-like stream, what the one error message below says.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
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
