"""The hash chain covers every stored column a figure depends on, old links still verify, TRUNCATE is refused.

These tests edit and reset the history as a superuser could (triggers off), so they run on an embedded
PostgreSQL of their own, never on the session's shared database.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any

import asyncpg
import pytest

from services.audit.replay import replay
from services.cli import replay as replay_cli
from services.cli import report as report_cli
from services.common import db, eventstore
from services.common.embedded import PG_OWNER, PG_SERVICE, PG_SUPERUSER, EmbeddedPostgres
from services.common.eventstore import NewEvent
from services.common.settings import Settings
from tests.helpers import cloudevent, unique
from tests.integration.test_audit import record_as_live

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)
# Each stored column a figure depends on, and an edit of it a superuser could make.
EDITS = {
    "id": "id = id || '-forged'",
    "subject": "subject = subject || '-forged'",
    "version": "version = version + 100",
    "type": "type = 'complaint.withdrawn'",
    "source": "source = 'forged/source'",
    "time": "time = time + interval '1 hour'",
    "recorded_at": "recorded_at = recorded_at - interval '1 second'",
    "raw": "raw = 'forged bytes'::bytea",
    "body": "body = jsonb_set(body::jsonb, '{data,channel}', '\"letter\"')::json",
}


@pytest.fixture(scope="module")
def chain_db(server: EmbeddedPostgres) -> str:
    """The URL the services connect with."""
    return server.url_for(PG_SERVICE)


def _received(subject: str, at: str) -> NewEvent:
    body = cloudevent("complaint.received", subject, at, {"service_area": "housing", "channel": "phone",
                                                          "stage": "level1", "serious": False,
                                                          "procedure": "dundee-2011"})
    return NewEvent(body, raw=json.dumps(body).encode())


async def _reset(conn: asyncpg.Connection) -> None:
    """An empty history, as a superuser could make it (triggers off for this session only)."""
    await conn.execute("SET session_replication_role = replica")
    await conn.execute("DELETE FROM events")
    await conn.execute("UPDATE chain_head SET seq = 0, hash = $1", bytes(32))
    await conn.execute("SET session_replication_role = DEFAULT")


async def _fresh(superuser: str, url: str, events: list[NewEvent]) -> None:
    conn = await asyncpg.connect(superuser)
    try:
        await _reset(conn)
    finally:
        await conn.close()
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await eventstore.append(conn, events)
    finally:
        await conn.close()


async def _edit(conn: asyncpg.Connection, assignment: str, seq: int) -> None:
    await conn.execute("SET session_replication_role = replica")
    await conn.execute(f"UPDATE events SET {assignment} WHERE seq = $1", seq)
    await conn.execute("SET session_replication_role = DEFAULT")


@pytest.mark.parametrize("column", sorted(EDITS))
async def test_an_edit_of_any_stored_column_breaks_the_chain_at_that_event(
        chain_db: str, superuser: str, column: str) -> None:
    await _fresh(superuser, chain_db, [_received(unique("case"), f"2011-03-0{i}T10:00:00+00:00") for i in (1, 2, 3)])
    conn = await asyncpg.connect(superuser)
    try:
        tx = conn.transaction()
        await tx.start()
        try:  # rolled back: the next test starts from an intact history
            assert await eventstore.verify_chain(conn) == (3, None)
            await _edit(conn, EDITS[column], 2)
            _, broken = await eventstore.verify_chain(conn)
            summary = await replay(conn, [], FAR_FUTURE)
        finally:
            await tx.rollback()
    finally:
        await conn.close()
    assert broken is not None and broken.seq == 2 and "was edited" in broken.detail
    chain = [d for d in summary.differences if d.projection == "chain"]
    assert [d.seq for d in chain] == [2] and "was edited" in chain[0].detail


def _report_total(settings: Settings, capsys: pytest.CaptureFixture[str]) -> int:
    args = argparse.Namespace(start=date(2011, 1, 1), end=date(2011, 12, 31), format="json", recorded_by=None)
    assert report_cli.run(args, settings) == 0
    return int(json.loads(capsys.readouterr().out)["complaints"]["total"])


def test_moving_a_complaint_out_of_its_period_changes_the_report_and_replay_catches_it(
        chain_db: str, superuser: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    own = replace(settings, database_url=chain_db)
    late = _received(unique("case"), "2011-12-31T23:30:00+00:00")
    asyncio.run(_fresh(superuser, chain_db, []))
    asyncio.run(_record(chain_db, [_received(unique("case"), "2011-06-01T10:00:00+00:00").body, late.body]))
    assert _replay(own, capsys, 1)[0] == 0
    seq = asyncio.run(_fetch_seq(chain_db, late.id))
    assert _report_total(own, capsys) == 2
    asyncio.run(_execute_edit(superuser, "time = time + interval '1 hour'", seq))  # into 2012
    try:
        assert _report_total(own, capsys) == 1
        for workers in (1, 2):
            code, out = _replay(own, capsys, workers)
            assert code == 1, out
            assert f"(chain): event {late.id} (seq {seq}) was edited" in out
    finally:
        asyncio.run(_execute_edit(superuser, "time = time - interval '1 hour'", seq))
    assert _replay(own, capsys, 2)[0] == 0


def _replay(settings: Settings, capsys: pytest.CaptureFixture[str], workers: int) -> tuple[int, str]:
    args = argparse.Namespace(until=FAR_FUTURE, batch=4, workers=workers, expect_head=None)
    code = replay_cli.run(args, settings)
    return code, capsys.readouterr().out


async def _record(url: str, inbound: list[dict[str, Any]]) -> None:
    """Record inbound events and what the services derive from them, as live does."""
    conn = await asyncpg.connect(url)
    try:
        await record_as_live(conn, inbound)
    finally:
        await conn.close()


async def _fetch_seq(url: str, event_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT seq FROM events WHERE id = $1", event_id))
    finally:
        await conn.close()


async def _execute_edit(url: str, assignment: str, seq: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await _edit(conn, assignment, seq)
    finally:
        await conn.close()


async def test_truncating_the_history_is_refused_even_to_its_owner(chain_db: str, superuser: str,
                                                                   server: EmbeddedPostgres) -> None:
    await _fresh(superuser, chain_db, [_received(unique("case"), "2011-03-01T10:00:00+00:00")])
    conn = await asyncpg.connect(server.url_for(PG_OWNER))
    try:
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            async with conn.transaction():  # TRUNCATE is transactional: were it allowed, this rolls it back
                await conn.execute("TRUNCATE events")
                raise AssertionError("TRUNCATE events was allowed")
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
    finally:
        await conn.close()


# --- a history recorded before the link covered every column --------------------------------------


def _original_link(prev: bytes, seq: int, event_id: str, body_digest: bytes, raw: bytes | None) -> bytes:
    """The link as the history recorded it before: sha256(prev, seq, id, digest, sha256(raw))."""
    raw_digest = hashlib.sha256(raw).digest() if raw is not None else b""
    return hashlib.sha256(prev + seq.to_bytes(8, "big") + event_id.encode() + body_digest + raw_digest).digest()


async def _record_the_original_way(conn: asyncpg.Connection, events: list[NewEvent]) -> None:
    prev, recorded_at = bytes(32), datetime.now(timezone.utc)
    for seq, event in enumerate(events, start=1):
        text = event.canonical()
        body_digest = hashlib.sha256(text).digest()
        link, prev = prev, _original_link(prev, seq, event.id, body_digest, event.raw)
        await conn.execute(
            "INSERT INTO events (seq, id, subject, version, type, source, time, recorded_at, raw, body, digest, "
            "prev_hash, hash) VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            seq, event.id, event.subject, event.body["type"], event.body["source"],
            datetime.fromisoformat(event.body["time"]), recorded_at, event.raw, text.decode(), body_digest, link, prev)
    await conn.execute("UPDATE chain_head SET seq = $1, hash = $2", len(events), prev)


async def _migrations_before_the_chain_covered_every_column(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY, "
                       "applied_at timestamptz NOT NULL DEFAULT now())")
    for path in sorted(db.MIGRATIONS.glob("00[1-5]_*.sql")):
        await conn.execute(path.read_text())
        await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)


@pytest.fixture(scope="module")
def upgraded_db(server: EmbeddedPostgres) -> str:
    """A database whose first three events were recorded with the original link, then migrated; the
    superuser's URL (its tests edit rows)."""
    async def build() -> None:
        owner = server.url_for(PG_OWNER, "upgraded")
        conn = await asyncpg.connect(owner)
        try:
            await _migrations_before_the_chain_covered_every_column(conn)
            await _record_the_original_way(conn, [_received(unique("old"), f"2010-0{i}-01T10:00:00+00:00")
                                                  for i in (1, 2, 3)])
        finally:
            await conn.close()
        await db.migrate(owner)
        conn = await asyncpg.connect(server.url_for(PG_SERVICE, "upgraded"))
        try:
            async with conn.transaction():
                await eventstore.append(conn, [_received(unique("new"), f"2011-0{i}-01T10:00:00+00:00")
                                               for i in (1, 2)])
        finally:
            await conn.close()
    server.create_database("upgraded")
    asyncio.run(build())
    return server.url_for(PG_SUPERUSER, "upgraded")


async def test_a_history_recorded_with_the_original_link_still_verifies_and_new_links_cover_time(
        upgraded_db: str) -> None:
    conn = await asyncpg.connect(upgraded_db)
    try:
        assert await eventstore.verify_chain(conn) == (5, None)
        assert not (await replay(conn, [], FAR_FUTURE)).differences
        for seq, assignment in ((2, EDITS["body"]), (4, EDITS["time"]), (5, EDITS["recorded_at"])):
            tx = conn.transaction()
            await tx.start()
            try:
                await _edit(conn, assignment, seq)
                _, broken = await eventstore.verify_chain(conn)
            finally:
                await tx.rollback()
            assert broken is not None and broken.seq == seq, assignment
    finally:
        await conn.close()
