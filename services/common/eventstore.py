"""The event store: the one append-only, hash-chained history in PostgreSQL.

Appends are serialised by the row lock on `chain_head`, so the global `seq` order is the commit
order and the relay can follow the history by `seq` without gaps. Callers pass a connection
inside their own transaction, so a service's state change and the events it derives commit
together, once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import asyncpg

from schemas.canonical import canonical
from schemas.times import event_time
from services.common.redaction import is_redaction

EVENTS_CHANNEL = "casefeedback_events"
# What checking one link of the chain reads of a row, in this order (`link_problem`). The first eight
# columns are a `StoredEvent` but for the parsed body, so replay reads events and links in one query.
LINK_COLUMNS = ("seq, id, subject, version, type, time, recorded_at, body::text AS body, source, raw, digest, "
                "prev_hash, hash")
GENESIS = bytes(32)
NO_RAW = bytes(32)  # the raw digest of an event without original bytes (derived events)
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)


def digest(body: dict[str, Any]) -> bytes:
    """sha256 of the canonical body; equal digests mean the same event."""
    return hashlib.sha256(canonical(body)).digest()


def instant_text(moment: datetime) -> str:
    """A stored instant as the chain hashes it: whole microseconds since 1970-01-01 UTC, in decimal.

    timestamptz keeps exactly microseconds, so the text is the same before storing and after reading
    back, whatever offset the instant was given with; and it costs a fifth of an ISO 8601 text.
    """
    return str((moment - UNIX_EPOCH) // MICROSECOND)


def link_text(seq: int, event_id: str, subject: str, version: int, event_type: str, source: str,
              time: datetime, recorded_at: datetime) -> bytes:
    """The columns a link covers besides the body and raw bytes, NUL-separated (text columns cannot hold NUL)."""
    return (f"{seq}\0{event_id}\0{subject}\0{version}\0{event_type}\0{source}\0"
            f"{instant_text(time)}\0{instant_text(recorded_at)}").encode()


def chain_hash(prev: bytes, columns: bytes, body_digest: bytes, raw: bytes | None) -> bytes:
    """The link of one event: sha256 over the previous hash, its body and raw digests and `link_text`.

    The three digests have a fixed length and the variable text comes last, so no two events share the bytes.
    """
    raw_digest = hashlib.sha256(raw).digest() if raw is not None else NO_RAW
    return hashlib.sha256(b"".join((prev, body_digest, raw_digest, columns))).digest()


def original_chain_hash(prev: bytes, seq: int, event_id: str, body_digest: bytes, raw: bytes | None) -> bytes:
    """The link as histories recorded it before `chain_format.full_from`: over seq, id, body and raw only."""
    raw_digest = hashlib.sha256(raw).digest() if raw is not None else b""
    # One buffer hashed at once: the same bytes as updating the hash part by part, in fewer calls.
    return hashlib.sha256(b"".join((prev, seq.to_bytes(8, "big"), event_id.encode(), body_digest, raw_digest))).digest()


def link_hash(prev: bytes, body_digest: bytes, raw: bytes | None, full_from: int, seq: int, event_id: str,
              subject: str, version: int, event_type: str, source: str, time: datetime,
              recorded_at: datetime) -> bytes:
    """The hash event `seq` must carry: the full link from seq `full_from` on, the original link before it."""
    if seq < full_from:
        return original_chain_hash(prev, seq, event_id, body_digest, raw)
    return chain_hash(prev, link_text(seq, event_id, subject, version, event_type, source, time, recorded_at),
                      body_digest, raw)


def erased_link_hash(prev: bytes, body_digest: bytes, raw_digest: bytes | None, full_from: int, seq: int,
                     event_id: str, subject: str, version: int, event_type: str, source: str, time: datetime,
                     recorded_at: datetime) -> bytes:
    """`link_hash` of an erased event, from the digests its original body and raw bytes had (kept on erasure)."""
    if seq < full_from:
        return hashlib.sha256(b"".join((prev, seq.to_bytes(8, "big"), event_id.encode(), body_digest,
                                        raw_digest or b""))).digest()
    columns = link_text(seq, event_id, subject, version, event_type, source, time, recorded_at)
    return hashlib.sha256(b"".join((prev, body_digest, raw_digest or NO_RAW, columns))).digest()


class Erased(NamedTuple):
    """What the history keeps of an erased event besides its redacted body (`erased_events`, migration 014)."""

    erasure_id: str
    fields: list[str]
    redacted_digest: bytes
    raw_digest: bytes | None


async def erased_events(conn: asyncpg.Connection) -> dict[int, Erased]:
    """Every erased event by seq (none where the erasure migration is not applied)."""
    if not await conn.fetchval("SELECT to_regclass('erased_events') IS NOT NULL"):
        return {}
    rows = await conn.fetch("SELECT seq, erasure_id, fields, redacted_digest, raw_digest FROM erased_events")
    return {r["seq"]: Erased(r["erasure_id"], list(r["fields"]), bytes(r["redacted_digest"]),
                             None if r["raw_digest"] is None else bytes(r["raw_digest"])) for r in rows}


async def full_link_from(conn: asyncpg.Connection) -> int:
    """The first seq whose link covers every stored column (`chain_format`, set when that link came in)."""
    return int(await conn.fetchval("SELECT full_from FROM chain_format"))


@dataclass(frozen=True)
class NewEvent:
    """An event to append: its normalised body and, for inbound events, the original bytes.

    What the caller already worked out may come along and is then not worked out again:
    `canonical_body` must be `canonical(body)`, `body_digest` its sha256 and `time` the body's time.
    """

    body: dict[str, Any]
    raw: bytes | None = None
    canonical_body: bytes | None = field(default=None, compare=False, repr=False)
    body_digest: bytes | None = field(default=None, compare=False, repr=False)
    time: datetime | None = field(default=None, compare=False, repr=False)

    def canonical(self) -> bytes:
        """The canonical bytes of the body (precomputed or computed now)."""
        return self.canonical_body if self.canonical_body is not None else canonical(self.body)

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def subject(self) -> str:
        return str(self.body["subject"])


class StoredEvent(NamedTuple):
    """An event as the history holds it (a named tuple: replay and intake make one per event)."""

    seq: int
    id: str
    subject: str
    version: int
    type: str
    time: datetime
    recorded_at: datetime
    body: dict[str, Any]


@dataclass(frozen=True)
class AppendResult:
    """What an append did with each event offered."""

    stored: list[StoredEvent]
    duplicates: list[NewEvent]
    conflicts: list[NewEvent]


async def known_ids(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, bytes]:
    """Digest of each of `ids` that the history already holds."""
    rows = await conn.fetch("SELECT id, digest FROM events WHERE id = any($1::text[])", list(ids))
    return {r["id"]: bytes(r["digest"]) for r in rows}


async def known_subjects(conn: asyncpg.Connection, subjects: Sequence[str]) -> dict[str, int]:
    """Current version of each of `subjects` that the history already holds."""
    # One index probe per subject: the planner cannot turn this into a scan of the whole history.
    rows = await conn.fetch(
        "SELECT k.subject, (SELECT max(e.version) FROM events e WHERE e.subject = k.subject) AS v "
        "FROM unnest($1::text[]) AS k(subject)",
        list(set(subjects)),
    )
    return {r["subject"]: int(r["v"]) for r in rows if r["v"] is not None}


async def append(conn: asyncpg.Connection, events: Sequence[NewEvent], now: datetime | None = None,
                 recorded: Mapping[str, bytes] | None = None) -> AppendResult:
    """Append events in order; same id and body is a duplicate, same id other body a conflict.

    Must run inside the caller's transaction. Returns what was stored, in `seq` order. A caller that
    already holds the `chain_head` lock and looked the ids up (`known_ids`) may pass that as `recorded`.
    """
    head = await conn.fetchrow("SELECT h.seq, h.hash, f.full_from FROM chain_head h CROSS JOIN chain_format f "
                               "FOR UPDATE OF h")
    seq, prev, full_from = int(head["seq"]), bytes(head["hash"]), int(head["full_from"])
    ids = [str(e.body["id"]) for e in events]
    subjects = [str(e.body["subject"]) for e in events]
    seen = dict(recorded) if recorded is not None else await known_ids(conn, ids)
    versions = await known_subjects(conn, subjects)
    recorded_at = now or datetime.now(timezone.utc)
    rows: list[tuple[Any, ...]] = []
    stored: list[StoredEvent] = []
    dups: list[NewEvent] = []
    conflicts: list[NewEvent] = []
    for event, event_id, subject in zip(events, ids, subjects, strict=True):
        text = event.canonical()
        d = event.body_digest or hashlib.sha256(text).digest()
        if event_id in seen:
            (dups if seen[event_id] == d else conflicts).append(event)
            continue
        seen[event_id] = d
        seq += 1
        version = versions.get(subject, 0) + 1
        versions[subject] = version
        time = event.time or event_time(event.body)
        event_type, source = str(event.body["type"]), str(event.body["source"])
        link, prev = prev, link_hash(prev, d, event.raw, full_from, seq, event_id, subject, version, event_type,
                                     source, time, recorded_at)
        rows.append((seq, event_id, subject, version, event_type, source, time, recorded_at,
                     event.raw, text.decode(), d, link, prev))
        stored.append(StoredEvent(seq, event_id, subject, version, event_type, time, recorded_at, event.body))
    if rows:
        await conn.copy_records_to_table(
            "events", records=rows,
            columns=["seq", "id", "subject", "version", "type", "source", "time", "recorded_at", "raw", "body",
                     "digest", "prev_hash", "hash"],
        )
        await conn.execute("UPDATE chain_head SET seq = $1, hash = $2", seq, prev)
        await conn.execute(f"NOTIFY {EVENTS_CHANNEL}")
    return AppendResult(stored, dups, conflicts)


def _stored(r: asyncpg.Record) -> StoredEvent:
    return StoredEvent(r["seq"], r["id"], r["subject"], r["version"], r["type"], r["time"], r["recorded_at"],
                       json.loads(r["body"]))


async def subject_history(conn: asyncpg.Connection, subject: str) -> list[StoredEvent]:
    """Every event of one subject in the order the history accepted them."""
    rows = await conn.fetch(
        "SELECT seq, id, subject, version, type, time, recorded_at, body::text AS body FROM events "
        "WHERE subject = $1 ORDER BY version", subject,
    )
    return [_stored(r) for r in rows]


@dataclass(frozen=True)
class ChainBreak:
    """The first place where the stored history does not match its hash chain."""

    seq: int
    id: str
    detail: str


async def verify_chain(conn: asyncpg.Connection, batch: int = 10000) -> tuple[int, ChainBreak | None]:
    """Recompute the hash chain over the whole history; return events checked and the first break."""
    prev, expected_seq, checked, after = GENESIS, 1, 0, 0
    full_from, erased = await full_link_from(conn), await erased_events(conn)
    while True:
        rows = await conn.fetch(
            f"SELECT {LINK_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2", after, batch,
        )
        if not rows:
            return checked, None
        for r in rows:
            problem = link_problem(r, prev, expected_seq, full_from, erased)
            if problem:
                return checked, ChainBreak(r["seq"], r["id"], problem)
            prev, expected_seq, checked = bytes(r["hash"]), expected_seq + 1, checked + 1
        after = rows[-1]["seq"]


def link_problem(r: Sequence[Any], prev: bytes, expected_seq: int, full_from: int,
                 erased: Mapping[int, Erased] | None = None) -> str | None:
    """What is wrong with one stored event's link in the chain (None when intact).

    `r` is a row of `LINK_COLUMNS` in that order (read by position: replay checks every row). The body
    is kept verbatim, so its digest is the sha256 of that text: no re-serialising, no ambiguity. An
    event in `erased` is checked by `erased_link_problem` (only when its body no longer matches its digest).
    """
    seq, event_id, subject, version, event_type, time, recorded_at, body, source, raw, stored_digest, prev_hash, \
        stored_hash = r
    if seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {seq}"
    d = hashlib.sha256(body.encode()).digest()
    # bytea columns arrive as bytes (a memoryview compares by content too): no copies needed.
    if d != stored_digest:
        if erased and seq in erased:
            return erased_link_problem(r, prev, full_from, erased[seq], d)
        return f"event {event_id} (seq {seq}) was edited: its body does not match its digest"
    if prev_hash != prev:
        return f"event {event_id} (seq {seq}): prev_hash does not match the previous event's hash"
    if link_hash(prev, d, raw, full_from, seq, event_id, subject, version, event_type, source, time,
                 recorded_at) != stored_hash:
        return f"event {event_id} (seq {seq}) was edited: its hash does not match its contents"
    return None


def erased_link_problem(r: Sequence[Any], prev: bytes, full_from: int, erased: Erased,
                        body_digest: bytes) -> str | None:
    """What is wrong with an erased event: its redacted body must be the one recorded, show exactly the
    erased fields as erased, and its link must hold with the original digests kept."""
    seq, event_id, subject, version, event_type, time, recorded_at, body, source, raw, stored_digest, prev_hash, \
        stored_hash = r
    if body_digest != erased.redacted_digest or raw is not None:
        return f"erased event {event_id} (seq {seq}) was edited after its erasure"
    if not is_redaction(json.loads(body), erased.fields):
        return f"erased event {event_id} (seq {seq}): its body does not show exactly its erased fields as erased"
    if prev_hash != prev:
        return f"event {event_id} (seq {seq}): prev_hash does not match the previous event's hash"
    if erased_link_hash(prev, bytes(stored_digest), erased.raw_digest, full_from, seq, event_id, subject, version,
                        event_type, source, time, recorded_at) != stored_hash:
        return f"event {event_id} (seq {seq}) was edited: its hash does not match its contents"
    return None
