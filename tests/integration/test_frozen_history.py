"""A history recorded under contract 1.1, frozen in tests/fixtures, replays to the same state and figures forever.

Never regenerate the fixture or its figures to make this pass: a change that breaks it breaks old history
(add an upcaster in schemas/upcast.py instead).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.common.embedded import PG_SERVICE, EmbeddedPostgres
from services.common.settings import Settings
from tests.integration.test_audit import FAR_FUTURE, record_as_live
from tests.integration.test_erasure import _cli, _report

FIXTURES = Path(__file__).parents[1] / "fixtures"
HISTORY = FIXTURES / "history_contract_1_1.jsonl"
FIGURES = FIXTURES / "history_contract_1_1.report.json"


async def record_frozen(url: str) -> None:
    """Record the frozen history (inbound events and what the domains derive), unless it already is."""
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT count(*) FROM events WHERE id = 'frozen-000'"):
            await record_as_live(conn, [json.loads(line) for line in HISTORY.read_text().splitlines()])
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def frozen(server: EmbeddedPostgres) -> str:
    url = server.url_for(PG_SERVICE)
    asyncio.run(record_frozen(url))
    return url


def test_the_frozen_contract_1_1_history_replays_clean_and_gives_its_frozen_figures(
        frozen: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    report: dict[str, Any] = _report(settings, frozen, capsys)
    assert report == json.loads(FIGURES.read_text())
    assert _cli(settings, frozen, "replay", "--until", FAR_FUTURE.isoformat(), "--workers", "1") == 0
    out = capsys.readouterr().out
    assert "no differences" in out and "complaint.received: 6" in out
