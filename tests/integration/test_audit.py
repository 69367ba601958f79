"""Report, history and replay on the real embedded PostgreSQL.

The report and history tests use the session's shared database (unique subjects, deltas). Replay
reads the whole history, which other tests fill with events of their own, and its tamper tests edit
stored rows: they run on a separate embedded PostgreSQL of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from services.cli import history as history_cli
from services.cli import replay as replay_cli
from services.cli import report as report_cli
from services.common import db, eventstore
from services.common.embedded import PG_OWNER, EmbeddedPostgres
from services.common.eventstore import NewEvent, canonical
from services.common.settings import Settings
from services.deadlines.procedure_files import load_book
from services.escalation import domain as escalation
from services.learning import domain as learning
from tests.helpers import cloudevent, unique

FAR_FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)


def complaint_story(case: str, start: datetime, ack_days: int, reply_days: int,
                    closed: bool = False) -> list[dict[str, Any]]:
    """A dundee-2011 complaint: received, acknowledged, responded (upheld), and closed if asked."""
    def at(days: int) -> str:
        return (start + timedelta(days=days)).isoformat()
    return [cloudevent("complaint.received", case, at(0), {"service_area": "community_care", "channel": "phone",
                                                            "stage": "level1", "serious": False,
                                                            "procedure": "dundee-2011", "themes": ["delay"]}),
            cloudevent("complaint.acknowledged", case, at(ack_days), {"stage": "level1"}),
            cloudevent("complaint.responded", case, at(reply_days), {"stage": "level1", "outcome": "upheld"}),
            *([cloudevent("complaint.closed", case, at(reply_days + 1), {})] if closed else [])]


async def record_as_live(conn: asyncpg.Connection, inbound: list[dict[str, Any]]) -> None:
    """Append each inbound event and what escalation's and learning's domains derive from it, as live does."""
    book = load_book()
    states: dict[tuple[str, str], Any] = {}
    for body in inbound:
        async with conn.transaction():
            await eventstore.append(conn, [NewEvent(body, canonical(body))])
        for name, domain in (("escalation", escalation), ("learning", learning)):
            decision = domain.decide(states.get((name, body["subject"])), body, book)
            states[(name, body["subject"])] = decision.state
            if decision.derived:
                async with conn.transaction():
                    await eventstore.append(conn, [NewEvent(d) for d in decision.derived])


async def _record(url: str, inbound: list[dict[str, Any]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await record_as_live(conn, inbound)
    finally:
        await conn.close()


def _report(settings: Settings, capsys: pytest.CaptureFixture[str], start: str, end: str,
            recorded_by: datetime | None = None) -> dict[str, Any]:
    args = argparse.Namespace(start=date.fromisoformat(start), end=date.fromisoformat(end), format="json",
                              recorded_by=recorded_by)
    assert report_cli.run(args, settings) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_report_counts_the_period_from_the_history_and_ignores_what_came_later(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    before = _report(settings, capsys, "1987-01-01", "1987-12-31")
    march = datetime(1987, 3, 2, 10, tzinfo=timezone.utc)
    late_in_year = datetime(1987, 12, 28, 10, tzinfo=timezone.utc)
    stories = (complaint_story(unique("case"), march, 1, 30)  # responded late (day 30 of 14)
               + complaint_story(unique("case"), late_in_year, 1, 10)  # responded in 1988: ongoing in 1987
               + complaint_story(unique("case"), datetime(1988, 1, 2, 10, tzinfo=timezone.utc), 1, 3))
    asyncio.run(_record(settings.require_database(), stories))
    after = _report(settings, capsys, "1987-01-01", "1987-12-31")
    c0, c1 = before["complaints"], after["complaints"]
    assert c1["total"] - c0["total"] == 2
    assert {k: c1["outcomes"][k] - c0["outcomes"][k] for k in c1["outcomes"]} == {
        "upheld": 1, "partially_upheld": 0, "not_upheld": 0, "resolved": 0, "ongoing": 1, "withdrawn": 0}
    assert c1["by_service_area"]["community_care"] - c0["by_service_area"].get("community_care", 0) == 2
    assert c1["responded_within_target_rate"] is not None and c1["acknowledged_within_target_rate"] is not None


def test_report_recorded_by_reproduces_a_published_report_despite_late_recorded_events(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_record(settings.require_database(),
                        complaint_story(unique("case"), datetime(1986, 6, 2, 10, tzinfo=timezone.utc), 1, 3)))
    published_at = datetime.now(timezone.utc)
    published = _report(settings, capsys, "1986-01-01", "1986-12-31", recorded_by=published_at)
    late = complaint_story(unique("case"), datetime(1986, 7, 1, 10, tzinfo=timezone.utc), 1, 3)
    asyncio.run(_append_more(settings.require_database(), late))  # entered afterwards, dated in 1986
    assert _report(settings, capsys, "1986-01-01", "1986-12-31", recorded_by=published_at) == published
    now = _report(settings, capsys, "1986-01-01", "1986-12-31")
    assert now["complaints"]["total"] == published["complaints"]["total"] + 1


def test_report_markdown_reads_as_a_report(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(start=date(1987, 1, 1), end=date(1987, 12, 31), format="markdown", recorded_by=None)
    assert report_cli.run(args, settings) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Complaints and compliments report, 1987-01-01 to 1987-12-31")
    assert "## Complaints" in text and "## Compliments" in text and "## Learning from complaints" in text


def test_history_prints_the_case_story_with_derived_deadline_events(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    case = unique("case")
    asyncio.run(_record(settings.require_database(),
                        complaint_story(case, datetime(1987, 5, 4, 9, tzinfo=timezone.utc), 1, 20)))
    assert history_cli.run(argparse.Namespace(subject=case), settings) == 0
    out = capsys.readouterr().out
    assert "service area community_care, procedure dundee-2011; stages level1; outcome upheld" in out
    assert "deadlines: 2 met (1 late), 1 breached" in out
    lines = [line for line in out.splitlines() if line.startswith("1987-")]
    types = [line.split()[2] if " -> " in line else line.split()[1] for line in lines]
    assert types[:2] == ["complaint.received", "deadline.scheduled"]
    assert types.count("deadline.scheduled") == 2 and "deadline.breached" in types
    # in time order: the breach stands at the due time it passed (before the late response, though
    # recorded after it), and the late response meets the deadline after
    responded = types.index("complaint.responded")
    breached = types.index("deadline.breached")
    assert breached < responded and "kind=respond" in lines[breached]
    assert types[responded + 1:] == ["deadline.met"]
    assert "kind=respond" in lines[-1] and "late=yes" in lines[-1] and " -> " in lines[-1]
    assert " -> " not in lines[0] and "outcome=upheld" in lines[responded]


def test_history_of_an_unknown_subject_says_so_and_exits_1(
        settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    case = unique("nobody")
    assert history_cli.run(argparse.Namespace(subject=case), settings) == 1
    assert f"{case}: no events recorded" in capsys.readouterr().out


# --- replay, on a database of its own -------------------------------------------------------------


@pytest.fixture(scope="module")
def own_db() -> Iterator[str]:
    """A separate embedded PostgreSQL with the migrations applied, for tests that edit the history."""
    server = EmbeddedPostgres().start()
    try:  # the schema's owner: these tests switch the history's triggers off, which the services' role may not
        owner = server.url_for(PG_OWNER)
        asyncio.run(db.migrate(owner))
        yield owner
    finally:
        server.stop()


async def _fresh_history(url: str, inbound: list[dict[str, Any]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_truncate")  # the owner may, the services not
        await conn.execute("TRUNCATE events")
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_truncate")
        await conn.execute("UPDATE chain_head SET seq = 0, hash = $1", bytes(32))
        await record_as_live(conn, inbound)
    finally:
        await conn.close()


async def _edit(conn: asyncpg.Connection, event_id: str, body: dict[str, Any] | str) -> None:
    """Change one stored body behind the system's back (the append-only trigger switched off)."""
    text = body if isinstance(body, str) else json.dumps(body)
    await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update")
    await conn.execute("UPDATE events SET body = $2::json WHERE id = $1", event_id, text)
    await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update")


async def _stored_text(url: str, event_id: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SELECT body::text FROM events WHERE id = $1", event_id))
    finally:
        await conn.close()


async def _edit_committed(url: str, event_id: str, body: dict[str, Any] | str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await _edit(conn, event_id, body)
    finally:
        await conn.close()


def _replay_cli(url: str, capsys: pytest.CaptureFixture[str], settings: Settings,
                until: datetime | None = FAR_FUTURE, workers: int = 1) -> tuple[int, str]:
    """Replay through the command (history only: no services ran on this database, so no live state)."""
    own = replace(settings, database_url=url)
    code = replay_cli.run(argparse.Namespace(until=until, batch=4, workers=workers, expect_head=None), own)
    return code, capsys.readouterr().out


def test_replay_passes_an_intact_history_and_catches_one_edited_event(
        own_db: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [unique("case") for _ in range(3)]
    start = datetime(2011, 2, 1, 10, tzinfo=timezone.utc)
    stories = [complaint_story(c, start + timedelta(days=i), 1 + i, 5 + 10 * i, closed=i == 0)
               for i, c in enumerate(cases)]
    asyncio.run(_fresh_history(own_db, [e for story in stories for e in story]))
    code, out = _replay_cli(own_db, capsys, settings)
    assert code == 0, out
    assert "complaint.received: 3" in out and "deadline.scheduled: 7" in out and "no differences" in out
    # 6 complaint deadlines (dundee level1: acknowledge, respond) and the closed case's learning deadline
    assert "learning.stage.opened: 1" in out and "projections rebuilt: history, escalation, learning, metrics" in out
    edited = stories[1][2]  # case 2's response
    original = asyncio.run(_stored_text(own_db, edited["id"]))  # restored byte for byte afterwards
    stored = json.loads(original)
    changed = {**stored, "data": {**stored["data"], "outcome": "not_upheld"}}
    asyncio.run(_edit_committed(own_db, edited["id"], changed))
    try:
        code, out = _replay_cli(own_db, capsys, settings)
        code_parallel, out_parallel = _replay_cli(own_db, capsys, settings, workers=2)
    finally:
        asyncio.run(_edit_committed(own_db, edited["id"], original))
    for exit_code, output in ((code, out), (code_parallel, out_parallel)):
        assert exit_code == 1
        assert f"first differing case: {cases[1]}" in output
        assert f"{cases[1]} (chain): event {edited['id']}" in output and "was edited" in output
    assert "complaint.received: 3" in out_parallel and "deadline.scheduled: 7" in out_parallel
    assert _replay_cli(own_db, capsys, settings)[0] == 0


def test_replay_reports_cases_the_live_service_does_not_hold(
        own_db: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    case = unique("case")
    asyncio.run(_fresh_history(own_db, complaint_story(case, datetime(2011, 3, 1, 10, tzinfo=timezone.utc), 1, 2)))
    phantom = unique("case")  # a live case with no history behind it
    asyncio.run(_insert_live_case(own_db, phantom, settings.kafka.partitions))
    # escalation's positions say it applied the whole history, yet its table lacks the case
    asyncio.run(_positions_at_head(own_db, "casefeedback-escalation", settings.kafka.partitions))
    try:
        for workers in (1, 2):  # the shards compare only their own cases; the phantom is nobody's
            code, out = _replay_cli(own_db, capsys, settings, until=None, workers=workers)
            assert code == 1
            assert "compared with live: escalation" in out
            assert f"first differing case: {min(case, phantom)}" in out  # the live comparison goes by key
            assert f"{case} (escalation): rebuilt from the history but missing from the live state" in out
            assert f"{phantom} (escalation): in the live state but not derivable from the history" in out
            assert out.count(f"{phantom} (escalation)") == 1
    finally:
        asyncio.run(_execute(own_db, "DELETE FROM escalation_cases WHERE subject = $1", phantom))
        asyncio.run(_execute(own_db, "DELETE FROM consumer_positions"))


async def _positions_at_head(url: str, group: str, partitions: int) -> None:
    """Store the group's position at the history's head on every partition (as if it had applied it all)."""
    await _execute(url, "INSERT INTO consumer_positions (grp, topic, partition, seq, hash) "
                        "SELECT $1, 'casefeedback.events', p, seq, hash FROM chain_head, generate_series(0, $2 - 1) p",
                   group, partitions)


async def _insert_live_case(url: str, subject: str, partitions: int) -> None:
    from services.audit.applied import partition_of
    from services.escalation import codec

    body = cloudevent("complaint.received", subject, "2011-03-01T10:00:00Z", {
        "service_area": "housing", "channel": "phone", "stage": "level1", "serious": False, "themes": [],
        "procedure": "dundee-2011"})
    state = escalation.decide(None, body, load_book()).state
    assert state is not None
    await _execute(url, "INSERT INTO escalation_cases (subject, partition, last_seq, open, stage, service_area, state) "
                        "VALUES ($1, $3, 0, true, 'level1', 'housing', $2::jsonb)",
                   subject, json.dumps(codec.encode(state)), partition_of(subject, partitions))


async def _execute(url: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def test_a_parallel_replay_whose_shard_fails_stops_with_an_error_not_a_hang(
        own_db: str, settings: Settings) -> None:
    from services.audit.parallel import replay_parallel
    from services.common.errors import InfrastructureError

    await _fresh_history(own_db, complaint_story(unique("case"), datetime(2011, 5, 1, 10, tzinfo=timezone.utc), 1, 2))
    unreachable = replace(settings, database_url="postgresql://postgres@127.0.0.1:1/casefeedback")  # shards fail
    conn = await asyncpg.connect(own_db)
    try:
        with pytest.raises(InfrastructureError, match=r"replay shard \d/2 failed \(exit code 1\)"):
            await asyncio.wait_for(replay_parallel(conn, unreachable, None, batch=2, workers=2), 60)
    finally:
        await conn.close()


async def _rewrite_chain_from(conn: asyncpg.Connection, seq: int) -> None:
    """What a careful forger does after an edit: recompute every digest and hash from `seq` on."""
    prev = bytes(await conn.fetchval("SELECT prev_hash FROM events WHERE seq = $1", seq))
    full_from = await eventstore.full_link_from(conn)
    await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update")
    for r in await conn.fetch(f"SELECT {eventstore.LINK_COLUMNS} FROM events WHERE seq >= $1 ORDER BY seq", seq):
        d = hashlib.sha256(r["body"].encode()).digest()  # the system digests the stored text
        h = eventstore.link_hash(prev, d, r["raw"], full_from, r["seq"], r["id"], r["subject"], r["version"],
                                 r["type"], r["source"], r["time"], r["recorded_at"])
        await conn.execute("UPDATE events SET digest = $2, prev_hash = $3, hash = $4 WHERE seq = $1",
                           r["seq"], d, prev, h)
        prev = h
    await conn.execute("ALTER TABLE events ENABLE TRIGGER events_no_update")


async def test_replay_catches_an_edit_even_when_the_forger_rewrote_the_hash_chain(
        own_db: str, settings: Settings) -> None:
    from services.audit.projections import build_projections
    from services.audit.replay import replay

    case = unique("case")
    story = complaint_story(case, datetime(2011, 6, 1, 10, tzinfo=timezone.utc), 12, 13)  # acknowledged late
    await _fresh_history(own_db, story)
    conn = await asyncpg.connect(own_db)
    try:
        async with conn.transaction():  # rolled back below: the module's database stays intact
            row = await conn.fetchrow("SELECT seq, body::text AS body FROM events WHERE id = $1", story[1]["id"])
            body = json.loads(row["body"])
            body["time"] = "2011-06-02T10:00:00+00:00"  # pretend it was acknowledged on time
            await _edit(conn, story[1]["id"], body)
            await _rewrite_chain_from(conn, row["seq"])
            summary = await replay(conn, build_projections(replace(settings, database_url=own_db)), FAR_FUTURE)
            raise _Rollback(summary)
    except _Rollback as rolled:
        summary = rolled.summary
    finally:
        await conn.close()
    assert not [d for d in summary.differences if d.projection == "chain"]
    assert summary.differences and summary.differences[0].subject == case
    assert {d.projection for d in summary.differences} == {"escalation"}
    assert any("deadline.met" in d.detail for d in summary.differences)


class _Rollback(Exception):
    def __init__(self, summary: Any) -> None:
        self.summary = summary


def test_replay_until_reads_only_the_history_recorded_by_then(
        own_db: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = unique("case"), unique("case")
    asyncio.run(_fresh_history(own_db, complaint_story(first, datetime(2011, 4, 1, 10, tzinfo=timezone.utc), 1, 2)))
    cut = datetime.now(timezone.utc)
    asyncio.run(_append_more(own_db, complaint_story(second, datetime(2011, 4, 2, 10, tzinfo=timezone.utc), 1, 2)))
    code, out = _replay_cli(own_db, capsys, settings, until=cut)
    assert code == 0, out
    assert "complaint.received: 1" in out and "no differences" in out
    code, out = _replay_cli(own_db, capsys, settings)
    assert code == 0 and "complaint.received: 2" in out


async def _append_more(url: str, inbound: list[dict[str, Any]]) -> None:
    await asyncio.sleep(0.01)  # recorded strictly after the cut
    conn = await asyncpg.connect(url)
    try:
        await record_as_live(conn, inbound)
    finally:
        await conn.close()
