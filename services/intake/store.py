"""Intake's database adapter: what the history and the hold know, holding, releasing and expiring events.

Every function runs on a connection inside the caller's transaction, after `lock_history`, so that
concurrent intake workers (and the expiry task) see each other's committed holds and appends.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from schemas.canonical import canonical
from services.cases.story import JUDGED_TYPES, Act, act_of
from services.intake.domain import Known
from services.intake.story import Opener, opener_of


@dataclass(frozen=True)
class HeldEvent:
    """A valid event waiting in the hold for its predecessor, with where it came from."""

    id: str
    awaits: str
    digest: bytes
    body: dict[str, object]
    raw: bytes
    topic: str
    partition: int
    offset: int
    key: bytes | None
    record_time: datetime


# An erasure rule: the body with its erasable fields erased, and the fields erased.
Redactor = Callable[[Mapping[str, object]], tuple[dict[str, object], list[str]]]
_HELD_COLUMNS = ["id", "awaits", "digest", "body", "raw", "topic", "partition", "offset", "key", "record_time",
                 "held_at", "hold_until"]
_SELECT_HELD = 'id, awaits, digest, body, raw, topic, partition, "offset", key, record_time'


async def lock_history(conn: asyncpg.Connection) -> None:
    """Take the history's append lock first, so decisions and appends see one consistent history."""
    await conn.execute("SELECT 1 FROM chain_head FOR UPDATE")


def _present(keys_param: str) -> str:
    """The predecessor keys (`type/subject`; a type has no `/`) of an array parameter whose event the history holds.

    One probe of the (subject, version) index per key (LATERAL ... LIMIT 1), never a scan of the
    history; `type || ''` keeps the planner off the low-selectivity (type, time) index.
    """
    return (f"SELECT k.key FROM unnest({keys_param}::text[]) AS k(key) CROSS JOIN LATERAL "
            "(SELECT 1 FROM events e WHERE e.subject = substr(k.key, strpos(k.key, '/') + 1) "
            "AND e.type || '' = split_part(k.key, '/', 1) LIMIT 1) x")


def _openers(keys_param: str) -> str:
    """As `_present`, with the time of each key's latest event and, for a survey, its definition's body."""
    return (f"SELECT k.key, x.time, x.body FROM unnest({keys_param}::text[]) AS k(key) CROSS JOIN LATERAL "
            "(SELECT e.time, CASE WHEN e.type = 'survey.defined' THEN e.body::text END AS body FROM events e "
            "WHERE e.subject = substr(k.key, strpos(k.key, '/') + 1) AND e.type || '' = split_part(k.key, '/', 1) "
            "ORDER BY e.version DESC LIMIT 1) x")


def _opener(time: datetime, body: str | None) -> Opener:
    """What a present key's event says later events must fit (a survey's scales from its stored body)."""
    if body is None:
        return Opener(time, {})
    return opener_of(json.loads(body), time)


async def present_keys(conn: asyncpg.Connection, keys: set[str]) -> frozenset[str]:
    """The predecessor keys (type/subject) whose event the history holds."""
    if not keys:
        return frozenset()
    return frozenset(r["key"] for r in await conn.fetch(_present("$1"), list(keys)))


async def openers(conn: asyncpg.Connection, keys: set[str]) -> dict[str, Opener]:
    """The predecessor keys whose event the history holds, with what each (latest) event says."""
    if not keys:
        return {}
    return {r["key"]: _opener(r["time"], r["body"]) for r in await conn.fetch(_openers("$1"), list(keys))}


async def known(conn: asyncpg.Connection, ids: Sequence[str], keys: set[str]) -> Known:
    """Everything `plan_batch` needs to know about a batch, in one round trip of indexed lookups:
    the ids the history and the hold hold (with digests), the keys with events waiting in the hold,
    and the keys whose event the history holds (with its time and, for a survey, its definition)."""
    rows = await conn.fetch(
        "SELECT 'r' AS kind, id AS key, digest, NULL::timestamptz AS time, NULL::text AS body FROM events "
        "WHERE id = any($1::text[]) "
        "UNION ALL SELECT 'h', id, digest, NULL, NULL FROM intake_held WHERE id = any($1::text[]) "
        "UNION ALL (SELECT DISTINCT 'w', awaits, NULL::bytea, NULL::timestamptz, NULL::text FROM intake_held "
        "WHERE awaits = any($2::text[])) "
        f"UNION ALL SELECT 'p', p.key, NULL, p.time, p.body FROM ({_openers('$2')}) p",
        list(ids), list(keys),
    )
    recorded: dict[str, bytes] = {}
    held: dict[str, bytes] = {}
    waiting: set[str] = set()
    present: dict[str, Opener] = {}
    for r in rows:
        kind, key = r["kind"], r["key"]
        if kind == "r":
            recorded[key] = bytes(r["digest"])
        elif kind == "h":
            held[key] = bytes(r["digest"])
        elif kind == "w":
            waiting.add(key)
        else:
            present[key] = _opener(r["time"], r["body"])
    return Known(recorded, held, frozenset(present), frozenset(waiting), present)


async def hold(conn: asyncpg.Connection, events: Sequence[HeldEvent], held_at: datetime,
               hold_until: datetime) -> None:
    """Put events in the hold (arrival order is the order given)."""
    if not events:
        return
    rows = [(e.id, e.awaits, e.digest, json.dumps(e.body), e.raw, e.topic, e.partition, e.offset, e.key,
             e.record_time, held_at, hold_until) for e in events]
    await conn.copy_records_to_table("intake_held", records=rows, columns=_HELD_COLUMNS)


async def release(conn: asyncpg.Connection, keys: Sequence[str]) -> dict[str, list[HeldEvent]]:
    """Take the held events of `keys` out of the hold, each key's in arrival order."""
    if not keys:
        return {}
    rows = await conn.fetch(
        f"DELETE FROM intake_held WHERE awaits = any($1::text[]) RETURNING held_seq, {_SELECT_HELD}", list(keys)
    )
    out: dict[str, list[HeldEvent]] = {}
    for r in sorted(rows, key=lambda r: r["held_seq"]):
        out.setdefault(r["awaits"], []).append(_held(r))
    return out


async def any_expired(conn: asyncpg.Connection, now: datetime) -> bool:
    """Whether any held event's grace has passed at `now` (a cheap check without the lock)."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM intake_held WHERE hold_until <= $1)", now))


async def take_expired(conn: asyncpg.Connection, now: datetime, limit: int = 1000) -> list[HeldEvent]:
    """Take up to `limit` held events whose grace has passed out of the hold, in arrival order."""
    rows = await conn.fetch(
        f"DELETE FROM intake_held WHERE held_seq IN (SELECT held_seq FROM intake_held WHERE hold_until <= $1 "
        f"ORDER BY held_seq LIMIT $2) RETURNING held_seq, {_SELECT_HELD}", now, limit,
    )
    return [_held(r) for r in sorted(rows, key=lambda r: r["held_seq"])]


def _held(r: asyncpg.Record) -> HeldEvent:
    return HeldEvent(r["id"], r["awaits"], bytes(r["digest"]), json.loads(r["body"]), bytes(r["raw"]), r["topic"],
                     r["partition"], r["offset"], bytes(r["key"]) if r["key"] is not None else None,
                     r["record_time"])


async def redact_held(conn: asyncpg.Connection, subject: str, redact: Redactor) -> int:
    """Erase the erasable fields of the subject's held events (body, digest and raw bytes); how many changed.

    The raw bytes become the redacted body's canonical bytes, so nothing erased is appended or
    dead-lettered later.
    """
    rows = await conn.fetch("SELECT held_seq, body FROM intake_held WHERE body::json->>'subject' = $1 FOR UPDATE",
                            subject)
    changed = 0
    for r in rows:
        body, fields = redact(json.loads(r["body"]))
        if fields:
            text = canonical(body)
            await conn.execute("UPDATE intake_held SET body = $2, raw = $3, digest = $4 WHERE held_seq = $1",
                               r["held_seq"], text.decode(), text, hashlib.sha256(text).digest())
            changed += 1
    return changed


async def stories_since(conn: asyncpg.Connection) -> int:
    """The history's last seq when intake began keeping stories (cases with events up to it may lack a row)."""
    return int(await conn.fetchval("SELECT seq FROM intake_cases_since") or 0)


async def load_stories(conn: asyncpg.Connection, subjects: set[str], since: int) -> dict[str, list[Act]]:
    """Each known subject's acts to tell (`services.cases.rules.tell`): those intake admitted, in time order,
    or, for a case recorded before intake kept stories (`since`: a seq at or before it), its recorded acts in
    history order (judged again, as every reader judges them). A subject the history does not know is absent."""
    if not subjects:
        return {}
    rows = await conn.fetch("SELECT subject, acts::text AS acts FROM intake_cases WHERE subject = any($1::text[])",
                            list(subjects))
    out = {r["subject"]: [Act.from_json(a) for a in json.loads(r["acts"])] for r in rows}
    missing = [s for s in subjects if s not in out]
    if missing and since > 0:
        recorded = await conn.fetch(
            "SELECT subject, time, body::text AS body FROM events WHERE subject = any($1::text[]) "
            "AND type = any($2::text[]) AND seq <= $3 ORDER BY seq", missing, sorted(JUDGED_TYPES), since)
        for r in recorded:
            act = act_of(json.loads(r["body"]), r["time"])
            if act is not None:
                out.setdefault(r["subject"], []).append(act)
    return out


async def save_stories(conn: asyncpg.Connection, cases: Mapping[str, Sequence[Act]]) -> None:
    """Keep each subject's admitted acts (in the caller's transaction, beside the append)."""
    if cases:
        await conn.execute(
            "INSERT INTO intake_cases (subject, acts) SELECT s, a::jsonb "
            "FROM unnest($1::text[], $2::text[]) AS x(s, a) ON CONFLICT (subject) DO UPDATE SET acts = EXCLUDED.acts",
            list(cases), [json.dumps([a.to_json() for a in acts]) for acts in cases.values()])


# The hold key of an act its case's story refused for now: it waits for the case's next act (contract 11.1).
STORY_KEY = "story/"


async def held_for_stories(conn: asyncpg.Connection, subjects: Sequence[str]) -> list[HeldEvent]:
    """The acts waiting for these cases' stories to move, in arrival order, row-locked (left in the hold)."""
    if not subjects:
        return []
    rows = await conn.fetch(f"SELECT {_SELECT_HELD} FROM intake_held WHERE awaits = any($1::text[]) "
                            "ORDER BY held_seq FOR UPDATE", [STORY_KEY + s for s in subjects])
    return [_held(r) for r in rows]


async def unhold(conn: asyncpg.Connection, ids: Sequence[str]) -> None:
    """Take these events out of the hold (they were appended)."""
    if ids:
        await conn.execute("DELETE FROM intake_held WHERE id = any($1::text[])", list(ids))
