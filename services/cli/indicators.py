"""`casefeedback indicators --from DATE --to DATE [--population N] [--format json|markdown|html]`: the SPSO
complaints performance indicators (contract section 10) from the history."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from services.audit import store
from services.audit.indicators import IndicatorBuilder
from services.audit.indicators_page import render_indicators_html, render_indicators_markdown
from services.audit.report import Period
from services.audit.report_html import previous_period
from services.cli.arguments import day, instant
from services.cli.report import unfinished_note, write_out
from services.common.errors import ConfigurationError
from services.common.settings import Settings
from services.deadlines.procedure_files import load_book

HELP = "the SPSO complaints performance indicators for a period, computed from the recorded history"
POPULATION_VARIABLE = "CASEFEEDBACK_POPULATION"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", type=day, required=True, help="first day of the period (UTC)")
    parser.add_argument("--to", dest="end", type=day, required=True, help="last day of the period (UTC)")
    parser.add_argument("--population", type=int, default=None,
                        help=f"population served, for the per-1,000 indicators (else ${POPULATION_VARIABLE})")
    parser.add_argument("--format", choices=("json", "markdown", "html"), default="json")
    parser.add_argument("--output", type=Path, default=None, help="write to this file (default: stdout)")
    parser.add_argument("--recorded-by", dest="recorded_by", type=instant, default=None,
                        help="only events the history had accepted by this time (RFC 3339)")


def population(given: int | None, environment: dict[str, str]) -> int | None:
    """The population from the command line, else from the environment's configuration; None when neither."""
    raw = given if given is not None else environment.get(POPULATION_VARIABLE) or None
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{POPULATION_VARIABLE} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"the population must be a positive whole number, got {value}")
    return value


async def compute(settings: Settings, periods: list[Period], people: int | None,
                  recorded_by: datetime | None = None) -> list[dict[str, Any]]:
    """The indicators of each period, from one read of the history up to the latest period's end."""
    conn = await store.connect(settings.require_database())
    try:
        book = load_book(settings.procedures_dir, settings.default_procedure)
        builders = [IndicatorBuilder(p, book, people) for p in periods]
        async for bodies in store.bodies_until(conn, max(p.last_instant for p in periods), recorded_by=recorded_by):
            for builder in builders:
                builder.add_all(bodies)
        return [b.result() for b in builders]
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.start > args.end:
        raise ConfigurationError(f"--from {args.start} is after --to {args.end}")
    period, people = Period(args.start, args.end), population(args.population, dict(os.environ))
    periods = [period, previous_period(period)] if args.format == "html" else [period]
    results = asyncio.run(compute(settings.with_running_system(), periods, people, args.recorded_by))
    unfinished = unfinished_note(period, datetime.now(timezone.utc))
    if args.format == "html":
        write_out(render_indicators_html(results[0], results[1], unfinished), args.output)
    elif args.format == "markdown":
        write_out((f"> {unfinished}\n\n" if unfinished else "") + render_indicators_markdown(results[0]), args.output)
    else:
        write_out(json.dumps(results[0], indent=2) + "\n", args.output)
        if unfinished:  # beside the JSON, as `report` says it
            print(f"casefeedback indicators: {unfinished}", file=sys.stderr)
    return 0
