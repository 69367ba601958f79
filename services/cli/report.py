"""`casefeedback report --from DATE --to DATE [--format json|markdown]`: the period report from the history."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date
from typing import Any

from services.audit import store
from services.audit.report import Period, ReportBuilder
from services.audit.report_markdown import render_markdown
from services.common.errors import ConfigurationError
from services.common.settings import Settings

HELP = "the period's complaints and compliments report, computed from the recorded history"


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2011-12-31, got {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", type=_date, required=True, help="first day of the period (UTC)")
    parser.add_argument("--to", dest="end", type=_date, required=True, help="last day of the period (UTC)")
    parser.add_argument("--format", choices=("json", "markdown"), default="json")


async def compute(settings: Settings, period: Period) -> dict[str, Any]:
    """The report over the history as it stood at the period's end."""
    conn = await store.connect(settings.require_database())
    try:
        builder = ReportBuilder(period, settings.default_procedure, settings.procedures_dir)
        async for bodies in store.bodies_until(conn, period.last_instant):
            builder.add_all(bodies)
        return builder.result()
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.start > args.end:
        raise ConfigurationError(f"--from {args.start} is after --to {args.end}")
    report = asyncio.run(compute(settings.with_running_system(), Period(args.start, args.end)))
    if args.format == "markdown":
        sys.stdout.write(render_markdown(report))
    else:
        print(json.dumps(report, indent=2))
    return 0
