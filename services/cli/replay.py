"""`casefeedback replay [--until TIME] [--expect-head SEQ:HASH]`: rebuild every projection from the history,
check it against live, and print the chain head to publish."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import TextIO

from services.audit import store
from services.audit.parallel import AUTO_MAX_WORKERS, AUTO_MIN_EVENTS, MAX_WORKERS, auto_workers, replay_parallel
from services.audit.projections import build_judgement, build_projections
from services.audit.replay import Head, Progress, ReplaySummary, last_seq, render_summary, replay
from services.cli.arguments import chain_head, instant
from services.common.errors import ConfigurationError
from services.common.settings import Settings

HELP = ("rebuild every projection from the recorded history, verify its hash chain and every derived event, "
        "compare with the live state (in one snapshot, at the positions the services have applied: safe while "
        "they work), list the acts the judgement refuses and print the chain head to publish; exits 1 on any "
        "difference")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--until", type=instant, default=None,
                        help="replay only the history recorded up to this time (RFC 3339); live state is not compared")
    parser.add_argument("--batch", type=int, default=5000, help="events read per query")
    parser.add_argument("--workers", type=int, default=None,
                        help="split the subjects over this many processes besides the reader (default: for a "
                             f"history of {AUTO_MIN_EVENTS:,} events or more on two CPUs or more, one per CPU but "
                             f"one, from 2 to {AUTO_MAX_WORKERS}; else one process)")
    parser.add_argument("--expect-head", type=chain_head, default=None, metavar="SEQ:HASH",
                        help="a chain head printed by an earlier replay and kept outside the database: exits 1 "
                             "unless the event at SEQ still has that hash (a rewritten history does not)")


def progress_bar(out: TextIO) -> Progress:
    """A progress callback drawing one updating line on a terminal."""
    def draw(done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = int(share * 30)
        out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,} events")
        out.flush()
    return draw


async def run_replay(settings: Settings, until: datetime | None, batch: int, show_progress: bool,
                     workers: int | None = None, expect_head: Head | None = None) -> ReplaySummary:
    """Replay the history of the configured database through every available projection.

    `workers` None chooses by the history's size (`auto_workers`); `expect_head` is a published head to find.
    """
    conn = await store.connect(settings.require_database())
    try:
        if workers is None:
            workers = auto_workers(await last_seq(conn, until))
        progress = progress_bar(sys.stdout) if show_progress else None
        if workers > 1:
            summary = await replay_parallel(conn, settings, until, batch, workers, progress, expect_head)
        else:
            summary = await replay(conn, build_projections(settings), until, batch, progress, expect_head,
                                   build_judgement(settings))
        if show_progress:
            sys.stdout.write("\n")
        return summary
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.batch < 1 or (args.workers is not None and not 1 <= args.workers <= MAX_WORKERS):
        raise ConfigurationError(f"--batch must be at least 1 and --workers from 1 to {MAX_WORKERS}")
    summary = asyncio.run(run_replay(settings.with_running_system(), args.until, args.batch, sys.stdout.isatty(),
                                     args.workers, args.expect_head))
    sys.stdout.write(render_summary(summary))
    return 0 if summary.ok else 1
