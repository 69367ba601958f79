"""`casefeedback report --from DATE --to DATE [--format json|markdown|html]`: the period report from the history."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from services.audit import store
from services.audit.report import Period, ReportBuilder
from services.audit.report_html import previous_period, rate_counts, render_report_html
from services.audit.report_markdown import render_markdown
from services.cli.arguments import day, instant
from services.common.errors import ConfigurationError
from services.common.settings import Settings
from services.deadlines.procedure_files import load_book

HELP = "the period's complaints and compliments report, computed from the recorded history"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", type=day, required=True, help="first day of the period (UTC)")
    parser.add_argument("--to", dest="end", type=day, required=True, help="last day of the period (UTC)")
    parser.add_argument("--format", choices=("json", "markdown", "html"), default="json",
                        help="html: one self-contained page with charts and the previous period compared")
    parser.add_argument("--output", type=Path, default=None,
                        help="with --format html: write the page to this file (default: stdout)")
    parser.add_argument("--recorded-by", dest="recorded_by", type=instant, default=None,
                        help="only events the history had accepted by this time (RFC 3339): the report as it "
                             "could be computed then, e.g. to reproduce a published one exactly")


async def compute(settings: Settings, period: Period, recorded_by: datetime | None = None) -> dict[str, Any]:
    """The report over the history as it stood at the period's end (and as recorded by `recorded_by`)."""
    conn = await store.connect(settings.require_database())
    try:
        book = load_book(settings.procedures_dir, settings.default_procedure)
        builder = ReportBuilder(period, book, settings.labels)
        async for bodies in store.bodies_until(conn, period.last_instant, recorded_by=recorded_by):
            builder.add_all(bodies)
        return builder.result()
    finally:
        await conn.close()


async def compute_builders(settings: Settings, periods: list[Period],
                           recorded_by: datetime | None = None) -> list[ReportBuilder]:
    """One report builder per period, fed by one read of the history up to the latest period's end."""
    conn = await store.connect(settings.require_database())
    try:
        book = load_book(settings.procedures_dir, settings.default_procedure)
        builders = [ReportBuilder(p, book, settings.labels) for p in periods]
        async for bodies in store.bodies_until(conn, max(p.last_instant for p in periods), recorded_by=recorded_by):
            for builder in builders:
                builder.add_all(bodies)
        return builders
    finally:
        await conn.close()


def html_page(settings: Settings, period: Period, recorded_by: datetime | None, now: datetime) -> str:
    """The report page: this period, its rates' counts, the previous period of the same length, and the
    note that the period has not ended by `now` where it has not."""
    this, before = asyncio.run(compute_builders(settings, [period, previous_period(period)], recorded_by))
    return render_report_html(this.result(), before.result(), rate_counts(this), unfinished_note(period, now))


def write_out(text: str, output: Path | None) -> None:
    """`text` to the file `output`, or to stdout."""
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write {output}: {exc}") from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.start > args.end:
        raise ConfigurationError(f"--from {args.start} is after --to {args.end}")
    period = Period(args.start, args.end)
    if args.format == "html":
        write_out(html_page(settings.with_running_system(), period, args.recorded_by, datetime.now(timezone.utc)),
                  args.output)
        return 0
    builder, = asyncio.run(compute_builders(settings.with_running_system(), [period], args.recorded_by))
    report = builder.result()
    unfinished = unfinished_note(period, datetime.now(timezone.utc))
    if args.format == "markdown":
        sys.stdout.write((f"> {unfinished}\n\n" if unfinished else "") + render_markdown(report, rate_counts(builder)))
    else:
        print(json.dumps(report, indent=2))
        if unfinished:  # beside the JSON, which keeps exactly the contract's fields
            print(f"casefeedback report: {unfinished}", file=sys.stderr)
    return 0


def unfinished_note(period: Period, now: datetime) -> str | None:
    """What to say when the period has not ended yet: its figures are provisional."""
    if now > period.last_instant:
        return None
    return (f"The period has not ended: it runs to {period.end}; these figures cover events up to "
            f"{now.isoformat(timespec='seconds')} and will change.")
