"""`casefeedback history SUBJECT`: one case's whole story in order, with every derived deadline event."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.audit import store
from services.audit.history import render_story
from services.common import eventstore
from services.common.eventstore import StoredEvent
from services.common.settings import Settings

HELP = "print one case's whole story in order (each event and each derived deadline event)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject", help="the case (or compliment, survey, response) id")


async def fetch(settings: Settings, subject: str) -> list[StoredEvent]:
    """Every recorded event of `subject`, in the order the history accepted them."""
    conn = await store.connect(settings.require_database())
    try:
        return await eventstore.subject_history(conn, subject)
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    events = asyncio.run(fetch(settings.with_running_system(), args.subject))
    sys.stdout.write(render_story(args.subject, events))
    return 0 if events else 1
