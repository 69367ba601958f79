"""`casefeedback migrate`: apply the database migrations as the schema owner, then exit.

Where the services connect as a role that owns nothing (deploy/), this runs once before them with
`CASEFEEDBACK_MIGRATION_DATABASE_URL`; the services then only check that nothing is pending.
"""

from __future__ import annotations

import argparse
import asyncio

from services.common import db
from services.common.settings import Settings

HELP = ("apply the database migrations not applied yet, as the schema owner "
        "(CASEFEEDBACK_MIGRATION_DATABASE_URL, else DATABASE_URL)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No arguments: the database comes from the environment."""


def run(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(db.migrate(settings.migration_url()))
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}", flush=True)
    return 0
