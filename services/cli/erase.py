"""`casefeedback erase SUBJECT --reason TEXT`: erase a case's personal and free-text fields, keep the proof."""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timezone

from services.audit import store
from services.audit.erasure import Erasure, erase
from services.common.settings import Settings

ERASURE_JOB = "erasure"  # its database role (services/common/settings.py JOBS)

HELP = ("erase the personal and free-text fields (complainant reference, descriptions, reasons, extension "
        "attributes) of every event of SUBJECT from every PostgreSQL table, and record the erasure as an event; "
        "counts and the hash chain are kept")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject", help="the case id (the events' subject)")
    parser.add_argument("--reason", required=True,
                        help="why (e.g. 'erasure request DP-2026-114'); recorded with the erasure: no personal data")


async def erase_subjects(settings: Settings, subjects: list[str], reason: str) -> list[Erasure]:
    """Erase each subject in its own transaction, as the erasure role (the only one that may use the database's
    narrow path, `erase_event`): CASEFEEDBACK_ERASURE_DATABASE_URL, else DATABASE_URL."""
    conn = await store.connect(settings.database_url_for(ERASURE_JOB))
    try:
        return [await erase(conn, subject, reason, datetime.now(timezone.utc)) for subject in subjects]
    finally:
        await conn.close()


def describe(done: Erasure) -> str:
    """One line per erasure for people."""
    if done.erasure_id is None:
        return f"{done.subject}: nothing left to erase (erased before)"
    return (f"{done.subject}: erased {done.events} event(s) in the history and {done.held} held event(s); "
            f"recorded as erasure.recorded {done.erasure_id}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    [done] = asyncio.run(erase_subjects(settings.with_running_system(), [args.subject], args.reason))
    print(describe(done))
    return 0
