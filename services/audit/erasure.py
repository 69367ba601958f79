"""Erasure that keeps the proof: a subject's personal and free-text fields leave every PostgreSQL table.

`erase` redacts (`services/common/redaction.py`) every event of the subject in the history through the
database's one narrow path (`erase_event`, migration 014: only erasable fields, recorded in
`erased_events`), the subject's events waiting in intake's hold and in learning's state, and appends
an `erasure.recorded` event naming each erased event, the fields removed and the redacted body's
sha256, all in one transaction. Nothing a figure uses is erased, so replay rebuilds the same state
and every count stays; replay checks each erased event against its record (`erasure_problems`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from schemas.canonical import canonical
from schemas.upcast import schema_urn
from services.audit.differences import Difference
from services.common import eventstore
from services.common.errors import CasefeedbackError
from services.common.redaction import redact
from services.deadlines.timers import derived_id
from services.intake import store as intake_store
from services.learning import adapters as learning_adapters

ERASURE_TYPE = "erasure.recorded"
ERASURE_SOURCE = "casefeedback/audit"


class ErasureError(CasefeedbackError):
    """An erasure that cannot be done (unknown subject, empty reason, the database refused)."""


@dataclass(frozen=True)
class Erasure:
    """What one erasure did: events redacted in the history, held events redacted, the erasure event's id."""

    subject: str
    events: int
    held: int
    erasure_id: str | None  # None: nothing was left to erase, so nothing was recorded


def erasure_event(subject: str, reason: str, now: datetime, erased: list[dict[str, Any]], held: int) -> dict[str, Any]:
    """The event that records an erasure (its id is unique per subject and instant)."""
    return {"specversion": "1.0", "id": derived_id(subject, ERASURE_TYPE, now), "source": ERASURE_SOURCE,
            "type": ERASURE_TYPE, "subject": subject, "time": now.isoformat(), "datacontenttype": "application/json",
            "dataschema": schema_urn(ERASURE_TYPE), "data": {"reason": reason, "events": erased, "held": held}}


async def erase(conn: asyncpg.Connection, subject: str, reason: str, now: datetime) -> Erasure:
    """Erase the subject's erasable fields everywhere in the database and record it, in one transaction."""
    if not reason.strip():
        raise ErasureError("--reason must say why (e.g. 'erasure request 2026-114'); it is kept with the record")
    try:
        async with conn.transaction():
            return await _erase(conn, subject, reason, now)
    except asyncpg.PostgresError as exc:
        raise ErasureError(f"the database refused the erasure of {subject}: {exc}") from None


async def _erase(conn: asyncpg.Connection, subject: str, reason: str, now: datetime) -> Erasure:
    rows = await conn.fetch("SELECT seq, id, body::text AS body FROM events WHERE subject = $1 ORDER BY seq", subject)
    held = await intake_store.redact_held(conn, subject, redact)
    held += await learning_adapters.redact_held(conn, subject, redact)
    if not rows and not held:
        raise ErasureError(f"no event of subject {subject!r} is in the history or the hold; check the case id")
    erasure_id = derived_id(subject, ERASURE_TYPE, now)
    erased = [await _erase_event(conn, r, erasure_id) for r in rows]
    listed = [e for e in erased if e is not None]
    if not listed and not held:
        return Erasure(subject, 0, 0, None)
    event = erasure_event(subject, reason, now, listed, held)
    await eventstore.append(conn, [eventstore.NewEvent(event)], now)
    return Erasure(subject, len(listed), held, erasure_id)


async def _erase_event(conn: asyncpg.Connection, row: asyncpg.Record, erasure_id: str) -> dict[str, Any] | None:
    body, fields = redact(json.loads(row["body"]))
    if not fields:
        return None
    text = canonical(body)
    await conn.execute("SELECT erase_event($1, $2, $3, $4)", row["seq"], text.decode(), fields, erasure_id)
    return {"seq": row["seq"], "id": row["id"], "fields": fields, "redacted_digest": eventstore.digest(body).hex()}


def erasure_problems(erased: Mapping[int, eventstore.Erased], records: Iterable[tuple[int, str, dict[str, Any]]],
                     limit: int) -> list[Difference]:
    """Each erased event (up to seq `limit`) whose erasure is not recorded in the history as the table says."""
    listed: dict[int, tuple[str, int, dict[str, Any]]] = {}
    for seq, _subject, body in records:
        for item in body.get("data", {}).get("events", []):
            listed[int(item["seq"])] = (str(body["id"]), seq, item)
    found = []
    for seq, e in sorted(erased.items()):
        record = listed.get(seq)
        if record is None or record[1] > limit:
            found.append(Difference("chain", "-", f"erased event at seq {seq} has no erasure record in the history",
                                    seq))
        elif (record[0] != e.erasure_id or record[2].get("redacted_digest") != e.redacted_digest.hex()
              or record[2].get("fields") != e.fields):
            found.append(Difference("chain", "-", f"erased event at seq {seq} does not match its erasure record "
                                                  f"{record[0]}", seq))
    return found
