"""`casefeedback history SUBJECT`: one case's whole story in time order, with every derived deadline event,
the procedure it was received under and its open deadlines."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

import asyncpg

from services.audit import store
from services.audit.history import CaseFacts, OpenDeadline, render_story
from services.common import eventstore
from services.common.eventstore import StoredEvent
from services.common.settings import Settings
from services.deadlines.procedure_files import load_book
from services.deadlines.procedures import Procedure, ProcedureBook, parse_procedure
from services.deadlines.store import load_procedures

HELP = "print one case's whole story in time order (each event, each derived deadline event, open deadlines)"
# The procedure version the case was received under, from escalation's row (learning's when only it knows it).
PROCEDURE = """
SELECT c.state->>'procedure' AS key, p.document::text AS document
FROM (SELECT state FROM escalation_cases WHERE subject = $1
      UNION ALL SELECT state FROM learning_cases WHERE subject = $1) c
JOIN procedure_documents p ON p.key = c.state->>'procedure' LIMIT 1
"""
OPEN_DEADLINES = "SELECT owner, stage, kind, due FROM deadlines WHERE subject = $1 AND status = 'open' ORDER BY due"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject", help="the case (or compliment, survey, response) id")


async def _facts(conn: asyncpg.Connection, subject: str) -> CaseFacts:
    row = await conn.fetchrow(PROCEDURE, subject)
    if row is None:
        return CaseFacts()
    procedure: Procedure = parse_procedure(json.loads(row["document"]), f"stored document {row['key']!r}")
    deadlines = [OpenDeadline(r["stage"], r["kind"], r["due"],
                              procedure.learning_calendar() if r["owner"] == "learning" else procedure.case_calendar())
                 for r in await conn.fetch(OPEN_DEADLINES, subject)]
    return CaseFacts(f"{procedure.id} ({procedure.title})", deadlines)


async def fetch(settings: Settings, subject: str) -> tuple[list[StoredEvent], CaseFacts, ProcedureBook]:
    """Every recorded event of `subject`, what the live tables say of its procedure and open deadlines, and
    the procedures its acts are judged by (the files, and every stored version)."""
    book = load_book(settings.procedures_dir, settings.default_procedure)
    conn = await store.connect(settings.require_database())
    try:
        if await conn.fetchval("SELECT to_regclass('procedure_documents') IS NOT NULL"):
            await load_procedures(conn, book)
        return await eventstore.subject_history(conn, subject), await _facts(conn, subject), book
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    events, facts, book = asyncio.run(fetch(settings.with_running_system(), args.subject))
    sys.stdout.write(render_story(args.subject, events, facts, datetime.now(UTC), book))
    return 0 if events else 1
