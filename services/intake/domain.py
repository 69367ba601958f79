"""Intake's pure decisions: validation verdicts, which events need a predecessor, and the batch plan.

No broker, database or clock in here: the worker passes what the history already knows and `now`.

Rules chosen where the contract leaves them open (SPSO model complaints handling procedure: a
complaint's handling starts when it is received, so nothing can be acknowledged, responded to,
escalated, withdrawn, closed or learned from before the history knows it was received):
- every `complaint.*` other than `complaint.received`, and every `learning.*`, needs the case's
  `complaint.received`; `survey.response.submitted` needs its `data.survey_id`'s `survey.defined`;
- such an event waits (is held) for its predecessor for a grace time measured in processing time,
  then becomes an `out_of_order` dead letter; a predecessor accepted inside the grace releases the
  held events of its key right after itself, in the order intake received them;
- an id already in the history or already held is a duplicate when the body is the same, else a
  conflict (`invalid_data`, the first one is kept);
- extension attributes must be scalars (CloudEvents 1.0), which bounds nesting to the payload's;
- extension attribute numbers must be finite: `NaN`, `Infinity` and numbers past the float range
  (`1e400`) are refused as `not_cloudevent`, on both validation paths;
- event times must lie between years 1900 and 2999 as written (PostgreSQL and Python both
  represent them, and no public-service record predates that), and no text may contain a NUL
  character (PostgreSQL text cannot hold it);
- a record in the CloudEvents Kafka binding's binary content mode (`services/intake/binary.py`) is
  judged as the structured event it stands for; a valid event on an inbound topic that is not its
  type's is `wrong_topic`; an extension agreed to a date before the act that agreed it is
  `inconsistent`; what must fit the case's or survey's story is in `services/intake/story.py`;
- a `source` of `casefeedback` or `casefeedback/...` (any case) is the project's own, which only
  its services' derived events carry: an inbound event claiming it is valid in form but not
  permitted, so it is dead-lettered `not_allowed` (not `invalid_data`, which says the form is wrong);
- every accepted event is recorded with its payload version (`dataschema`,
  `urn:casefeedback:schema:<type>:<n>`, `schemas/upcast.py`): the current one where the sender gave
  none; an older one is read through the upcasters (strictly: nothing the sender gave is dropped, so a
  version 1 `complaint.received` naming its complainant is refused like a version 2 one); any other
  `dataschema` (a later version, another type's, another form) is `invalid_data`. Versions are
  stamped before digesting, so one event sent with or without its `dataschema` is one event, and an
  event recorded before versions were stamped (no `dataschema`) and sent again is a duplicate;
- whatever goes wrong while judging one record refuses that record (`invalid_data`), never intake.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from schemas.canonical import canonical, canonical_float_free
from schemas.registry import INBOUND_TYPES, OnePass, Rejection, check_source, parse_json, validate_object
from schemas.times import event_time
from services.intake import binary, story
from services.intake.binary import Headers
from services.intake.story import Opener

INBOUND_MODELS = {t: model for t, (model, _) in INBOUND_TYPES.items()}
ONE_PASS = OnePass(INBOUND_MODELS)
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
ENVELOPE_ATTRIBUTES = frozenset({"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data",
                                 "dataschema"})
# Types whose normalised body holds no float whatever it says (their schemas have no number field):
# their canonical bytes come from the fast writer, unless an extension attribute is a float.
FLOAT_FREE_TYPES = frozenset(t for t, model in INBOUND_MODELS.items()
                             if '"number"' not in json.dumps(model.model_json_schema()))
CASE_OPENER = "complaint.received"
CASE_CLOSER = "complaint.closed"
SURVEY_OPENER = "survey.defined"
EXTENSION = "complaint.extension_agreed"


def type_label(event_type: object) -> str:
    """A bounded metric label for an event type: a contract inbound type, else "unknown"."""
    return event_type if isinstance(event_type, str) and event_type in INBOUND_TYPES else "unknown"


class Accepted:
    """A record that passed validation: its normalised body, the body's canonical bytes and digest.

    What later steps ask of it (id, type, subject, time, predecessor keys) is read once, here.
    """

    __slots__ = ("awaits", "body", "canonical", "digest", "id", "provides", "subject", "time", "type")

    def __init__(self, body: dict[str, Any], digest: bytes, canonical: bytes = b"", time: datetime | None = None):
        self.body = body
        self.digest = digest
        self.canonical = canonical
        self.id = str(body["id"])
        self.type = str(body["type"])
        self.subject = str(body["subject"])
        self.time = event_time(body) if time is None else time
        self.awaits = awaits(body)
        self.provides = provides(body)

    def __repr__(self) -> str:
        return f"Accepted({self.type} {self.id!r})"

    def unversioned_digest(self) -> bytes:
        """The digest of the body without `dataschema`: how intake recorded the same event before it stamped
        payload versions, so that such an event sent again is still a duplicate."""
        return hashlib.sha256(canonical({k: v for k, v in self.body.items() if k != "dataschema"})).digest()


@dataclass(frozen=True)
class Refused:
    """A record that failed validation: a contract reason code, a detail, and a bounded type label."""

    reason: str
    detail: str
    type: str = "unknown"
    id: str | None = None  # the event's id where it could be read (for the log line; never the body)


Verdict = Accepted | Refused


def judge(value: bytes | None, max_bytes: int, topic: str | None = None, headers: Headers = (),
          key: bytes | None = None) -> Verdict:
    """Validate one inbound record (on `topic`, when given); never raises, every failure is a Refused."""
    oversized = _oversized(key, value, headers, max_bytes)
    if oversized is not None:
        return oversized
    if headers and binary.is_binary(headers):
        return _judge_binary(headers, value, max_bytes, topic)
    if value is None:
        return Refused("not_json", "record has no value (a tombstone); send a CloudEvent as JSON")
    obj: Any = None
    try:
        body = ONE_PASS.normalised(value)
        if body is not None:  # a plainly valid event (nearly all): checked and normalised in one pass
            obj = body
            float_free = _check_extensions(body) and body["type"] in FLOAT_FREE_TYPES
            return _fits(_accept(body, float_free), topic, max_bytes)
        obj = parse_json(value)
        _check_extensions(obj)
        return _fits(_accept(validate_object(obj, INBOUND_MODELS).normalised()), topic, max_bytes)
    except Exception as exc:  # a fault on one record's content refuses that record, never intake
        return _refused(exc, obj)


def _oversized(key: bytes | None, value: bytes | None, headers: Headers, max_bytes: int) -> Refused | None:
    """`too_large` when key, value and headers together exceed `max_bytes` (checked before anything is parsed)."""
    key_bytes, value_bytes = len(key or b""), len(value or b"")
    header_bytes = binary.size(headers) if headers else 0
    total = key_bytes + value_bytes + header_bytes
    if total <= max_bytes:
        return None
    return Refused("too_large", f"record is {total:,} bytes (key {key_bytes:,}, value {value_bytes:,}, headers "
                                f"{header_bytes:,}); the limit is {max_bytes:,}")


def _judge_binary(headers: Headers, value: bytes | None, max_bytes: int, topic: str | None) -> Verdict:
    """A binary-mode record (already within `max_bytes`): judged as the structured event it stands for."""
    obj: Any = None
    try:
        obj = binary.structured(headers, value)
        _check_extensions(obj)
        return _fits(_accept(validate_object(obj, INBOUND_MODELS).normalised()), topic, max_bytes)
    except Exception as exc:
        return _refused(exc, obj)


def _refused(exc: Exception, obj: Any) -> Refused:
    """The verdict on a record whose judging raised `exc` (`obj`: what of it was read, if anything)."""
    event_id = _id_of(obj)
    if isinstance(exc, Rejection):
        return Refused(exc.reason, exc.detail, _label_of(obj), event_id)
    if isinstance(exc, ValueError | TypeError | RecursionError | OverflowError):  # pydantic serialisation limits
        detail = f"event cannot be normalised ({type(exc).__name__}: {str(exc)[:200]}); nest less deeply"
    else:
        detail = f"event could not be checked ({type(exc).__name__}: {str(exc)[:200]})"
    return Refused("invalid_data", detail, _label_of(obj), event_id)


def _fits(accepted: Accepted, topic: str | None, max_bytes: int) -> Accepted:
    """The accepted event, once it is within `max_bytes` as recorded, on its type's topic and agrees with itself
    (else Rejection)."""
    # Binary-mode attributes grow when written as JSON (a `"` takes two bytes, a control character six).
    if len(accepted.canonical) > max_bytes:
        raise Rejection("too_large", f"event is {len(accepted.canonical):,} bytes as the history records it "
                                     f"(its attributes written as JSON); the limit is {max_bytes:,}")
    expected = INBOUND_TYPES[accepted.type][1]
    if topic is not None and topic != expected:
        raise Rejection("wrong_topic", f"{accepted.type} belongs on {expected}, not {topic[:100]}; "
                                       f"send it to {expected}")
    if accepted.type == EXTENSION:
        agreed = accepted.body["data"]["new_due"]
        if agreed < accepted.time.date().isoformat():
            raise Rejection("inconsistent", f"data.new_due: {agreed} is before the extension was agreed "
                                            f"({accepted.body['time']}); an agreed date lies after the agreement")
    return accepted


def _check_extensions(obj: Any) -> bool:
    """CloudEvents 1.0: extension attributes are scalars (which also bounds nesting to the payload's).

    Returns whether no extension attribute is a float.
    """
    if not isinstance(obj, dict) or obj.keys() <= ENVELOPE_ATTRIBUTES:  # no extensions: the common case
        return True
    float_free = True
    for name, value in obj.items():
        if name in ENVELOPE_ATTRIBUTES:
            continue
        if not isinstance(value, str | int | float | bool | None):
            raise Rejection("not_cloudevent", f"extension attribute {str(name)[:50]!r} must be a string, "
                                              f"number or boolean, got {type(value).__name__}")
        if isinstance(value, float):
            float_free = False
            if not math.isfinite(value):
                raise Rejection("not_cloudevent", f"extension attribute {str(name)[:50]!r} must be a finite "
                                                  "number (not NaN, Infinity or beyond the float range)")
    return float_free


def _label_of(obj: Any) -> str:
    return type_label(obj.get("type")) if isinstance(obj, dict) else "unknown"


def _id_of(obj: Any) -> str | None:
    event_id = obj.get("id") if isinstance(obj, dict) else None
    return event_id[:200] if isinstance(event_id, str) else None


def _accept(body: dict[str, Any], float_free: bool = False) -> Accepted:
    check_source(body["source"])
    time = event_time(body)
    if not EARLIEST_YEAR <= time.year <= LATEST_YEAR:
        raise Rejection("invalid_data", f"time: {body['time']} is outside the years 1900 to 2999")
    try:
        data = canonical_float_free(body) if float_free else canonical(body)
    except UnicodeEncodeError:
        raise Rejection("not_json", "a text value holds a lone UTF-16 surrogate (not valid Unicode)") from None
    except ValueError:
        raise Rejection("invalid_data", "a number is NaN or infinite, which JSON does not allow") from None
    if b"\\u0000" in data and _has_nul(body):  # JSON escapes NUL; check the text only when it may hold one
        raise Rejection("invalid_data", "a text value contains a NUL character (\\u0000), which is not allowed")
    return Accepted(body, hashlib.sha256(data).digest(), data, time)


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def awaits(body: Mapping[str, Any]) -> str | None:
    """The predecessor key an event needs in the history before it, or None if it needs none."""
    event_type, subject = str(body["type"]), str(body["subject"])
    if event_type.startswith("learning."):  # learning acts belong after the closure (contract 11.1)
        return f"{CASE_CLOSER}/{subject}"
    if event_type.startswith("complaint.") and event_type != CASE_OPENER:
        return f"{CASE_OPENER}/{subject}"
    if event_type == "survey.response.submitted":
        return f"{SURVEY_OPENER}/{body['data']['survey_id']}"
    return None


def provides(body: Mapping[str, Any]) -> str | None:
    """The predecessor key an event satisfies once it is in the history, or None."""
    if body["type"] in (CASE_OPENER, CASE_CLOSER, SURVEY_OPENER):
        return f"{body['type']}/{body['subject']}"
    return None


def split_key(key: str) -> tuple[str, str]:
    """A predecessor key as (type, subject) for looking it up in the history."""
    event_type, _, subject = key.partition("/")
    return event_type, subject


# --- the batch plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """What the history and the hold already know about a batch's ids and predecessor keys."""

    recorded: Mapping[str, bytes]  # id -> digest of events in the history
    held: Mapping[str, bytes]  # id -> digest of events waiting in the hold
    present: frozenset[str]  # predecessor keys the history holds
    waiting: frozenset[str]  # predecessor keys with events already in the hold
    openers: Mapping[str, Opener] = field(default_factory=dict)  # present key -> what its (latest) event says


class Append(NamedTuple):
    """Append the batch item at this position to the history."""

    item: int


class Release(NamedTuple):
    """Append the events held (from earlier batches) for `key`, in arrival order."""

    key: str


@dataclass
class Plan:
    """What to do with one batch: history appends in order, holds, duplicates, conflicts, refusals."""

    appends: list[Append | Release] = field(default_factory=list)
    holds: dict[int, str] = field(default_factory=dict)  # item index -> predecessor key
    duplicates: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    refusals: dict[int, Rejection] = field(default_factory=dict)  # item index -> why it does not fit its story
    openers: dict[str, Opener] = field(default_factory=dict)  # key -> its opener, for checking released events


def plan_batch(items: Sequence[Verdict], known: Known) -> Plan:
    """Decide each valid item's fate, keeping per-subject arrival order (refused items are left out)."""
    plan = Plan(openers=dict(known.openers))
    seen: dict[str, bytes] = {**known.held, **known.recorded}
    present, waiting = set(known.present), set(known.waiting)
    pending: dict[str, list[int]] = {}  # in-batch items waiting for a key this batch may still provide
    for index, item in enumerate(items):
        if not isinstance(item, Accepted):
            continue
        if item.id in seen:
            same = seen[item.id] == item.digest or seen[item.id] == item.unversioned_digest()
            (plan.duplicates if same else plan.conflicts).append(index)
            continue
        seen[item.id] = item.digest
        _place(plan, index, item, present, waiting, pending, items)
    for key, indexes in pending.items():
        for index in indexes:
            plan.holds[index] = key
    return plan


def _place(plan: Plan, index: int, item: Accepted, present: set[str], waiting: set[str],
           pending: dict[str, list[int]], items: Sequence[Verdict]) -> None:
    need = item.awaits
    if need is not None and need not in present:
        pending.setdefault(need, []).append(index)
        return
    if not _fits_story(plan, index, item):
        return
    plan.appends.append(Append(index))
    opened = item.provides
    if opened is None or (opened in present and item.type != SURVEY_OPENER):  # a case keeps its first receipt
        return
    plan.openers[opened] = story.opener_of(item.body, item.time)  # a survey's latest definition counts
    if opened in present:
        return
    present.add(opened)
    if opened in waiting:
        plan.appends.append(Release(opened))
    for i in pending.pop(opened, []):
        waiter = items[i]
        if isinstance(waiter, Accepted) and _fits_story(plan, i, waiter):
            plan.appends.append(Append(i))


def _fits_story(plan: Plan, index: int, item: Accepted) -> bool:
    """Whether the item fits its predecessor's story; else it is planned as a refusal."""
    problem = story.problem(item.body, plan.openers.get(item.awaits or ""), item.time) if item.awaits else None
    if problem is not None:
        plan.refusals[index] = problem
    return problem is None

