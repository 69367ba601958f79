"""Fixtures of the integration tests that need a database of their own (beside the session's shared one)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from services.common import db
from services.common.embedded import PG_OWNER, PG_SUPERUSER, EmbeddedPostgres
from tests.helpers import register_roles


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    """A separate embedded PostgreSQL with the migrations applied."""
    embedded = EmbeddedPostgres().start()
    try:
        asyncio.run(db.migrate(embedded.url_for(PG_OWNER)))
        register_roles(embedded)
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture(scope="module")
def superuser(server: EmbeddedPostgres) -> str:
    """The URL of a superuser, who can switch the history's triggers off."""
    return server.url_for(PG_SUPERUSER)
