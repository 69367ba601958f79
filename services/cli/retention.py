"""`casefeedback retention [--dry-run|--apply]`: list, or erase, the cases whose retention period has run out."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import date, datetime, timezone
from pathlib import Path

from services.audit import store
from services.audit.retention import DueCase, RetentionRules, due_cases, load_rules
from services.cli.erase import ERASURE_JOB, describe, erase_subjects
from services.common.settings import Settings

HELP = ("list (--dry-run, the default) or erase (--apply) the closed cases whose retention period, configured "
        "per procedure or service area in the retention file, has run out")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only list the cases due (the default)")
    mode.add_argument("--apply", action="store_true", help="erase every case listed, as `casefeedback erase` does")
    parser.add_argument("--rules", type=Path, default=None,
                        help="the retention file (default: $CASEFEEDBACK_RETENTION_FILE, else the built-in "
                             "six years after closure)")
    parser.add_argument("--today", type=date.fromisoformat, default=None, help=argparse.SUPPRESS)


async def find_due(settings: Settings, rules: RetentionRules, today: date) -> list[DueCase]:
    """The cases due for erasure on `today` (read as DATABASE_URL's role, else as the erasure role)."""
    conn = await store.connect(settings.database_url or settings.database_url_for(ERASURE_JOB))
    try:
        return await due_cases(conn, rules, settings.default_procedure, today)
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    named = args.rules or os.environ.get("CASEFEEDBACK_RETENTION_FILE")
    rules = load_rules(Path(named) if named else None)
    settings = settings.with_running_system()
    today = args.today or datetime.now(timezone.utc).date()
    due = asyncio.run(find_due(settings, rules, today))
    for case in due:
        print(f"{case.subject}\tprocedure {case.procedure}\tservice area {case.service_area}\t"
              f"closed {case.closed}\tdue for erasure since {case.erase_from}")
    print(f"{len(due)} case(s) due for erasure on {today}")
    if args.apply and due:
        for done in asyncio.run(erase_subjects(settings, [c.subject for c in due], "retention period ended")):
            print(describe(done))
    return 0
