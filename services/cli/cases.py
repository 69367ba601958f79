"""`casefeedback cases`: the complaints officer's work list, open complaints by their next deadline.

Read from escalation's tables (`escalation_cases`, `deadlines`, `procedure_documents`) as the services'
role, which may SELECT them; each case is counted in the calendar of the procedure version it was
received under.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.audit import store
from services.common.settings import Settings
from services.deadlines.procedures import Procedure, parse_procedure
from services.deadlines.worklist import Distance, distance

HELP = "the work list: open complaints with their next deadline, soonest first"
OWNER = "escalation"
# Each complaint whose status is open, suspended or responded (the `open` column: contract 11.1) with its
# soonest open deadline (none when its stage has no timed target, or it is answered).
QUERY = """
SELECT c.subject, c.stage, c.service_area, c.state->>'procedure' AS procedure_key,
       coalesce(c.state->>'status', 'open') AS status, d.kind, d.due, p.document::text AS document
FROM escalation_cases c
LEFT JOIN LATERAL (SELECT kind, due FROM deadlines
                   WHERE owner = $1 AND subject = c.subject AND status = 'open' ORDER BY due LIMIT 1) d ON true
LEFT JOIN procedure_documents p ON p.key = c.state->>'procedure'
WHERE c.open AND ($2::text IS NULL OR c.stage = $2) AND ($3::text IS NULL OR c.service_area = $3)
"""


@dataclass(frozen=True)
class WorkItem:
    """One open complaint and its next deadline."""

    subject: str
    procedure: str
    stage: str
    service_area: str
    kind: str | None
    due: datetime | None
    distance: Distance | None
    status: str = "open"

    def as_json(self) -> dict[str, Any]:
        """Contract section 8's shape, with 11.1's `status`: {subject, procedure, stage, service_area, kind, due,
        overdue, status}."""
        return {"subject": self.subject, "procedure": self.procedure, "stage": self.stage,
                "service_area": self.service_area, "kind": self.kind,
                "due": self.due.isoformat() if self.due else None,
                "overdue": bool(self.distance and self.distance.overdue), "status": self.status}

    def when(self) -> str:
        """How far the next deadline is, or why there is none."""
        if self.distance:
            return self.distance.text()
        return {"responded": "answered: nothing due unless escalated",
                "suspended": "clock stopped"}.get(self.status, "no timed deadline")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overdue", action="store_true", help="only complaints whose next deadline has passed")
    parser.add_argument("--due-within", type=int, metavar="DAYS",
                        help="only those due within DAYS counting days of the case's calendar (overdue included)")
    parser.add_argument("--stage", metavar="S", help="only complaints at this stage")
    parser.add_argument("--service-area", metavar="A", help="only complaints of this service area")
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _procedure(document: str | None, key: str, parsed: dict[str, Procedure]) -> Procedure | None:
    if document is None:
        return None
    if key not in parsed:
        parsed[key] = parse_procedure(json.loads(document), f"stored document {key!r}")
    return parsed[key]


def items(rows: list[asyncpg.Record], now: datetime) -> list[WorkItem]:
    """The rows as work items, soonest deadline first (complaints without one last)."""
    parsed: dict[str, Procedure] = {}
    out = []
    for r in rows:
        procedure = _procedure(r["document"], r["procedure_key"], parsed)
        name = procedure.id if procedure else str(r["procedure_key"]).split("@")[0]
        answered = r["status"] == "responded"  # its kind and due are null (contract 11.1)
        due = None if answered else r["due"]
        due = due.astimezone(procedure.case_calendar().zone) if (due and procedure) else due
        away = distance(procedure.case_calendar(), due, now) if (due and procedure) else None
        out.append(WorkItem(r["subject"], name, r["stage"], r["service_area"], None if answered else r["kind"], due,
                            away, r["status"]))
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(out, key=lambda i: (i.due or far, i.subject))


def select(work: list[WorkItem], overdue: bool, due_within: int | None) -> list[WorkItem]:
    """The items the filters keep."""
    if overdue:
        work = [i for i in work if i.distance and i.distance.overdue]
    if due_within is not None:
        work = [i for i in work if i.distance and (i.distance.overdue or i.distance.days <= due_within)]
    return work


def render_table(work: list[WorkItem], now: datetime) -> str:
    """The work list as a table, with a heading line saying how many and as of when."""
    if not work:
        return f"no open complaints match (as of {now.isoformat(timespec='seconds')})\n"
    rows = [("due", "", "status", "subject", "procedure", "stage", "kind", "service area")]
    rows += [(i.due.isoformat(timespec="seconds") if i.due else "-", i.when(), i.status, i.subject, i.procedure,
              i.stage, i.kind or "-", i.service_area) for i in work]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]  # columns fit their longest value
    lines = [f"{len(work)} complaint(s) open, suspended or answered, soonest deadline first "
             f"(as of {now.isoformat(timespec='seconds')})"]
    lines += [" ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + " " + row[-1] for row in rows]
    return "\n".join(lines) + "\n"


async def fetch(settings: Settings, stage: str | None, area: str | None) -> list[asyncpg.Record]:
    """Every open complaint matching the stage and area filters, with its soonest open deadline."""
    conn = await store.connect(settings.require_database())
    try:
        rows: list[asyncpg.Record] = await conn.fetch(QUERY, OWNER, stage, area)
        return rows
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC)
    rows = asyncio.run(fetch(settings.with_running_system(), args.stage, args.service_area))
    work = select(items(rows, now), args.overdue, args.due_within)
    if args.format == "json":
        sys.stdout.write(json.dumps([i.as_json() for i in work], indent=1) + "\n")
    else:
        sys.stdout.write(render_table(work, now))
    return 0
