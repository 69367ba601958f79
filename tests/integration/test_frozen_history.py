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


async def record_frozen(url: str, path: Path = HISTORY) -> None:
    """Record a frozen history (inbound events and what the domains derive), unless it already is."""
    inbound = [json.loads(line) for line in path.read_text().splitlines()]
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT count(*) FROM events WHERE id = $1", inbound[0]["id"]):
            await record_as_live(conn, inbound)
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


REFUSED = FIXTURES / "history_contract_1_1_refused.jsonl"  # acts contract 1.1 let in and 1.2 refuses (11.1)


@pytest.fixture(scope="module")
def with_refused(frozen: str) -> str:
    asyncio.run(record_frozen(frozen, REFUSED))
    return frozen


def test_acts_1_2_refuses_in_a_1_1_history_are_read_as_refused_by_every_output(
        with_refused: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """An escalation to a stage spso-mchp lacks, a seven-week extension, a suspension the stage does not allow and
    a response after a withdrawal: the report, `history` and replay all read them as refused."""
    capsys.readouterr()
    assert _cli(settings, with_refused, "report", "--from", "2012-01-01", "--to", "2012-12-31",
                "--format", "json") == 0
    complaints = json.loads(capsys.readouterr().out)["complaints"]
    assert complaints["by_stage"] == {"stage1": 2, "stage2": 1}  # never stage3
    assert complaints["outcomes"] | {} == {"upheld": 1, "partially_upheld": 0, "not_upheld": 0, "resolved": 0,
                                          "ongoing": 1, "withdrawn": 1}
    assert _cli(settings, with_refused, "history", "refused-r1") == 0
    story = capsys.readouterr().out
    assert "stages stage1 -> stage2;" in story and "status open (1 act(s) refused, listed below)" in story
    refused = [line for line in story.splitlines() if "REFUSED" in line]
    assert len(refused) == 1 and "complaint.escalated to_stage stage3: procedure spso-mchp has no stage stage3" \
        in refused[0]
    assert _cli(settings, with_refused, "history", "refused-r2") == 0
    story = capsys.readouterr().out
    assert sum("REFUSED not_allowed" in line for line in story.splitlines()) == 2 and "status closed" in story
    assert _cli(settings, with_refused, "history", "refused-r3") == 0
    story = capsys.readouterr().out
    assert "REFUSED not_allowed: complaint.responded: the case was withdrawn" in story
    assert "outcome none yet; status withdrawn" in story
    for workers in ("1", "2"):
        assert _cli(settings, with_refused, "replay", "--until", FAR_FUTURE.isoformat(), "--workers", workers) == 0
        out = capsys.readouterr().out
        assert "no differences" in out
        listed = out.split("refused by the judgement: ")[1].splitlines()
        assert listed[0] == "4 act(s) (skipped by every output; not differences)"
        assert [line.split()[2:4] for line in listed[1:5]] == [
            ["refused-r1", "complaint.escalated:"], ["refused-r2", "complaint.extension_agreed:"],
            ["refused-r2", "complaint.suspended:"], ["refused-r3", "complaint.responded:"]]
        seqs = [int(line.split()[1]) for line in listed[1:5]]
        assert seqs == sorted(seqs) and all(line.startswith("  seq ") for line in listed[1:5])
        assert "not_allowed: complaint.escalated to_stage stage3: procedure spso-mchp has no stage stage3" \
            in listed[1]
        assert "not_allowed: complaint.responded: the case was withdrawn" in listed[4]
    # the contract 1.1 fixture still gives its frozen figures beside them
    assert _report(settings, with_refused, capsys) == json.loads(FIGURES.read_text())
