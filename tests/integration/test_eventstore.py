"""The event store on the real embedded PostgreSQL: order, versions, duplicates, conflicts, the hash chain."""

from __future__ import annotations

import asyncpg

from services.common import eventstore
from services.common.eventstore import NewEvent
from services.common.settings import Settings
from tests.helpers import cloudevent, unique


def _event(subject: str, id_: str | None = None, area: str = "community_care") -> NewEvent:
    body = cloudevent("complaint.received", subject, "2026-03-02T09:15:00+00:00",
                      {"service_area": area, "channel": "phone", "stage": "stage1", "serious": False}, id_)
    return NewEvent(body, raw=b"original bytes " + body["id"].encode())


async def test_append_assigns_global_order_and_per_subject_versions(pool: asyncpg.Pool) -> None:
    a, b = unique("case"), unique("case")
    async with pool.acquire() as conn, conn.transaction():
        result = await eventstore.append(conn, [_event(a), _event(b), _event(a)])
    seqs = [s.seq for s in result.stored]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert [(s.subject, s.version) for s in result.stored] == [(a, 1), (b, 1), (a, 2)]


async def test_same_id_same_body_is_a_duplicate_and_other_body_a_conflict(pool: asyncpg.Pool) -> None:
    subject, event_id = unique("case"), unique("ev")
    first = _event(subject, event_id)
    async with pool.acquire() as conn, conn.transaction():
        await eventstore.append(conn, [first])
    async with pool.acquire() as conn, conn.transaction():
        result = await eventstore.append(conn, [first, _event(subject, event_id, area="housing")])
    assert result.stored == []
    assert [d.id for d in result.duplicates] == [event_id]
    assert [c.id for c in result.conflicts] == [event_id]
    async with pool.acquire() as conn:
        history = await eventstore.subject_history(conn, subject)
    assert [h.body["data"]["service_area"] for h in history] == ["community_care"]


async def test_history_is_append_only(pool: asyncpg.Pool, settings: Settings) -> None:
    async with pool.acquire() as conn, conn.transaction():
        stored = (await eventstore.append(conn, [_event(unique("case"))])).stored[0]
    # The schema owner may update tables it owns, so the trigger refuses it (the services' role lacks the grant).
    conn = await asyncpg.connect(settings.migration_url())
    try:
        try:
            await conn.execute("UPDATE events SET type = 'x' WHERE seq = $1", stored.seq)
        except asyncpg.RaiseError as exc:
            assert "append-only" in str(exc)
        else:
            raise AssertionError("an update of the history was allowed")
    finally:
        await conn.close()


async def test_hash_chain_verifies_and_detects_an_edit_behind_the_systems_back(
        pool: asyncpg.Pool, settings: Settings) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await eventstore.append(conn, [_event(unique("case")) for _ in range(3)])
    owner = await asyncpg.create_pool(settings.migration_url(), min_size=1, max_size=1)  # only it owns the trigger
    assert owner is not None
    async with owner, owner.acquire() as conn:
        checked, broken = await eventstore.verify_chain(conn)
        assert broken is None and checked >= 3
        last = await conn.fetchval("SELECT max(seq) FROM events")
        tx = conn.transaction()
        await tx.start()
        try:  # the edit is rolled back so the shared history stays intact for other tests
            await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update")
            await conn.execute(
                "UPDATE events SET body = jsonb_set(body::jsonb, '{data,service_area}', '\"housing\"')::json "
                "WHERE seq = $1", last
            )
            _, broken = await eventstore.verify_chain(conn)
        finally:
            await tx.rollback()
    assert broken is not None and broken.seq == last
