"""Publishing the chain head: `replay` prints it, and `--expect-head` proves a published head is still there.

A forger with superuser rights can rewrite a row and recompute the whole chain consistently; only a head
published before (kept outside the database) tells. Runs on an embedded PostgreSQL of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from dataclasses import replace

import asyncpg
import pytest

from services.cli.main import build_parser
from services.common import eventstore
from services.common.embedded import PG_SERVICE, EmbeddedPostgres
from services.common.eventstore import NewEvent
from services.common.settings import Settings
from tests.helpers import cloudevent, unique

HEAD = re.compile(r"^chain head: seq (\d+) hash ([0-9a-f]{64})$", re.MULTILINE)


@pytest.fixture(scope="module")
def head_db(server: EmbeddedPostgres) -> str:
    """The URL the services connect with."""
    return server.url_for(PG_SERVICE)


def _compliment(subject: str, day: int) -> NewEvent:
    """An event no service derives anything from: the history alone replays without differences."""
    body = cloudevent("compliment.received", subject, f"2011-03-{day:02d}T10:00:00+00:00",
                      {"service_area": "housing", "channel": "phone", "about": "staff"})
    return NewEvent(body, raw=json.dumps(body).encode())


async def _reset(superuser: str) -> None:
    """An empty history, as a superuser could make it (triggers off for this session only)."""
    conn = await asyncpg.connect(superuser)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("DELETE FROM events")
        await conn.execute("UPDATE chain_head SET seq = 0, hash = $1", bytes(32))
    finally:
        await conn.close()


async def _append(url: str, count: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await eventstore.append(conn, [_compliment(unique("compliment"), 1 + i) for i in range(count)])
    finally:
        await conn.close()


def _replay(url: str, settings: Settings, capsys: pytest.CaptureFixture[str], workers: int,
            *options: str) -> tuple[int, str]:
    """`casefeedback replay` as typed, on this database (history only: no live state to compare)."""
    args = build_parser().parse_args(["replay", "--until", "2999-01-01T00:00:00+00:00", "--batch", "4",
                                      "--workers", str(workers), *options])
    code = int(args.module.run(args, replace(settings, database_url=url)))
    return code, capsys.readouterr().out


def _head(out: str) -> tuple[int, str]:
    found = HEAD.search(out)
    assert found is not None, out
    return int(found[1]), found[2]


@pytest.mark.parametrize("workers", [1, 2])
def test_replay_prints_the_chain_head_and_passes_while_the_history_still_holds_it(
        head_db: str, superuser: str, settings: Settings, capsys: pytest.CaptureFixture[str], workers: int) -> None:
    asyncio.run(_reset(superuser))
    asyncio.run(_append(head_db, 5))
    code, out = _replay(head_db, settings, capsys, workers)
    assert code == 0, out
    seq, hash_hex = _head(out)
    stored = asyncio.run(_fetch(head_db, "SELECT seq, hash FROM chain_head"))
    assert (seq, hash_hex) == (stored["seq"], bytes(stored["hash"]).hex()) and seq == 5
    asyncio.run(_append(head_db, 3))  # the history grew: the published head is still in it
    code, out = _replay(head_db, settings, capsys, workers, "--expect-head", f"{seq}:{hash_hex}")
    assert code == 0, out
    assert _head(out)[0] == 8 and f"published head seq 5 hash {hash_hex} found" in out


@pytest.mark.parametrize("workers", [1, 2])
def test_expect_head_fails_for_another_hash_or_a_shorter_history(
        head_db: str, superuser: str, settings: Settings, capsys: pytest.CaptureFixture[str], workers: int) -> None:
    asyncio.run(_reset(superuser))
    asyncio.run(_append(head_db, 4))
    code, out = _replay(head_db, settings, capsys, workers, "--expect-head", f"3:{'ab' * 32}")
    assert code == 1, out
    assert f"published head seq 3 hash {'ab' * 32} not found: the event at seq 3 has hash" in out
    code, out = _replay(head_db, settings, capsys, workers, "--expect-head", f"9:{'ab' * 32}")
    assert code == 1, out
    assert "published head seq 9 hash" in out and "not found: the history ends at seq 4" in out


def test_expect_head_refuses_a_malformed_head(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["replay", "--expect-head", "604:xyz"])
    assert "expected SEQ:HASH" in capsys.readouterr().err


async def _fetch(url: str, sql: str) -> asyncpg.Record:
    conn = await asyncpg.connect(url)
    try:
        row: asyncpg.Record = await conn.fetchrow(sql)
        return row
    finally:
        await conn.close()


async def _forge(url: str, seq: int) -> None:
    """Rewrite one row's time and recompute every digest and link from there on, exactly as the system would."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE events SET time = time + interval '300 days' WHERE seq = $1", seq)
        full_from = await eventstore.full_link_from(conn)
        prev = bytes(await conn.fetchval("SELECT prev_hash FROM events WHERE seq = $1", seq))
        for r in await conn.fetch(f"SELECT {eventstore.LINK_COLUMNS} FROM events WHERE seq >= $1 ORDER BY seq", seq):
            body_digest = hashlib.sha256(r["body"].encode()).digest()
            link = eventstore.link_hash(prev, body_digest, r["raw"], full_from, r["seq"], r["id"], r["subject"],
                                        r["version"], r["type"], r["source"], r["time"], r["recorded_at"])
            await conn.execute("UPDATE events SET digest = $2, prev_hash = $3, hash = $4 WHERE seq = $1",
                               r["seq"], body_digest, prev, link)
            prev = link
        await conn.execute("UPDATE chain_head SET hash = $1", prev)
        await conn.execute("SET session_replication_role = DEFAULT")
    finally:
        await conn.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_forged_history_with_a_consistent_chain_fails_the_head_published_before(
        head_db: str, superuser: str, settings: Settings, capsys: pytest.CaptureFixture[str], workers: int) -> None:
    asyncio.run(_reset(superuser))
    asyncio.run(_append(head_db, 6))
    code, out = _replay(head_db, settings, capsys, workers)
    assert code == 0, out
    published = _head(out)
    asyncio.run(_forge(superuser, 2))
    assert asyncio.run(_verify(head_db)) == (6, None)  # the chain alone cannot tell
    code, out = _replay(head_db, settings, capsys, workers)
    assert code == 0, out
    assert _head(out) != published
    code, out = _replay(head_db, settings, capsys, workers, "--expect-head", f"{published[0]}:{published[1]}")
    assert code == 1, out
    assert f"published head seq 6 hash {published[1]} not found: the event at seq 6 has hash" in out


async def _verify(url: str) -> tuple[int, eventstore.ChainBreak | None]:
    conn = await asyncpg.connect(url)
    try:
        return await eventstore.verify_chain(conn)
    finally:
        await conn.close()
