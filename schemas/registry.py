"""One table from event type to payload model and inbound topic, and the validation entry point."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import pydantic
from pydantic import ValidationError

from schemas import payloads as p
from schemas.envelope import CloudEvent
from schemas.upcast import UnknownVersion, current_data, schema_urn

TOPIC_COMPLAINTS = "feedback.complaints"
TOPIC_COMPLIMENTS = "feedback.compliments"
TOPIC_SURVEYS = "feedback.surveys"
TOPIC_LEARNING = "feedback.learning"
TOPIC_DEADLETTER = "feedback.deadletter"
TOPIC_EVENTS = "casefeedback.events"
TOPIC_ALERTS = "casefeedback.alerts"

INBOUND_TOPICS = (TOPIC_COMPLAINTS, TOPIC_COMPLIMENTS, TOPIC_SURVEYS, TOPIC_LEARNING)
ALL_TOPICS = (*INBOUND_TOPICS, TOPIC_DEADLETTER, TOPIC_EVENTS, TOPIC_ALERTS)

# Inbound types (contract section 3): type -> (payload model, inbound topic).
INBOUND_TYPES: dict[str, tuple[type[p.Payload], str]] = {
    "complaint.received": (p.ComplaintReceived, TOPIC_COMPLAINTS),
    "complaint.acknowledged": (p.ComplaintAcknowledged, TOPIC_COMPLAINTS),
    "complaint.extension_agreed": (p.ComplaintExtensionAgreed, TOPIC_COMPLAINTS),
    "complaint.responded": (p.ComplaintResponded, TOPIC_COMPLAINTS),
    "complaint.escalated": (p.ComplaintEscalated, TOPIC_COMPLAINTS),
    "complaint.withdrawn": (p.ComplaintWithdrawn, TOPIC_COMPLAINTS),
    "complaint.closed": (p.ComplaintClosed, TOPIC_COMPLAINTS),
    "complaint.suspended": (p.ComplaintSuspended, TOPIC_COMPLAINTS),
    "complaint.resumed": (p.ComplaintResumed, TOPIC_COMPLAINTS),
    "compliment.received": (p.ComplimentReceived, TOPIC_COMPLIMENTS),
    "survey.defined": (p.SurveyDefined, TOPIC_SURVEYS),
    "survey.response.submitted": (p.SurveyResponseSubmitted, TOPIC_SURVEYS),
    "learning.action.added": (p.LearningActionAdded, TOPIC_LEARNING),
    "learning.action.completed": (p.LearningActionCompleted, TOPIC_LEARNING),
    "learning.plan.submitted": (p.LearningPlanSubmitted, TOPIC_LEARNING),
}

# Derived types (contract section 4): only the project's services write them.
DERIVED_TYPES: dict[str, type[p.Payload]] = {
    "deadline.scheduled": p.DeadlinePayload,
    "deadline.warning": p.DeadlinePayload,
    "deadline.breached": p.DeadlinePayload,
    "deadline.met": p.DeadlineMet,
    "deadline.breach_withdrawn": p.DeadlineBreachWithdrawn,
    "learning.stage.opened": p.LearningStageDue,
    "learning.stage.overdue": p.LearningStageDue,
    "learning.stage.completed": p.LearningStageCompleted,
}

ALERT_TYPES = frozenset({"deadline.warning", "deadline.breached", "learning.stage.overdue",
                         "deadline.breach_withdrawn"})

ALL_TYPES: dict[str, type[p.Payload]] = {
    **{t: model for t, (model, _) in INBOUND_TYPES.items()},
    **DERIVED_TYPES,
}


@dataclass(frozen=True)
class Rejection(Exception):
    """Why a record cannot be accepted: a contract section 5 reason code and a detail for people."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class ValidEvent:
    """An envelope whose payload passed its type's model."""

    envelope: CloudEvent
    payload: p.Payload

    def normalised(self) -> dict[str, Any]:
        """The event as intake records it: envelope attributes, the payload (at the current version of its
        type) with defaults applied, and `dataschema` naming that version."""
        body = self.envelope.model_dump(mode="json", exclude_none=True)
        body["data"] = self.payload.model_dump(mode="json", exclude_none=True)
        body["dataschema"] = schema_urn(self.envelope.type)
        return body


def describe_errors(err: ValidationError, prefix: str = "") -> str:
    """A one-line, person-readable summary of pydantic errors naming each field."""
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "(root)"
        parts.append(f"{prefix}{loc}: {e['msg']}")
    more = len(err.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_json(value: bytes) -> Any:
    """Decode a record value as UTF-8 JSON or raise Rejection('not_json')."""
    try:
        return json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Rejection("not_json", f"value is not UTF-8 JSON: {str(exc)[:200]}") from None


def validate_object(obj: Any, types: dict[str, type[p.Payload]] | None = None) -> ValidEvent:
    """Check a decoded JSON object against the envelope and its type's payload."""
    if not isinstance(obj, dict):
        raise Rejection("not_cloudevent", f"expected a JSON object, got {type(obj).__name__}")
    known = ALL_TYPES if types is None else types
    try:
        envelope = CloudEvent.model_validate(obj)
    except ValidationError as err:
        raise Rejection("not_cloudevent", describe_errors(err)) from None
    model = known.get(envelope.type)
    if model is None:
        raise Rejection("unknown_type", f"type {envelope.type[:100]!r} is not one of {sorted(known)}")
    try:
        payload = model.model_validate(current_data(envelope.type, obj.get("dataschema"), envelope.data))
    except UnknownVersion as err:
        raise Rejection("invalid_data", str(err)) from None
    except ValidationError as err:
        raise Rejection("invalid_data", describe_errors(err, prefix="data.")) from None
    return ValidEvent(envelope, payload)


# The project's own source, which only its services' derived events carry (contract section 4).
RESERVED_SOURCE = "casefeedback"


def check_source(source: str) -> None:
    """Refuse (`not_allowed`) an inbound event whose `source` claims to be one of the project's services."""
    head = source[:len(RESERVED_SOURCE) + 1].lower()
    if head in (RESERVED_SOURCE, RESERVED_SOURCE + "/"):
        raise Rejection("not_allowed", f"source {source[:100]!r} is reserved for casefeedback's own services; "
                                       "send the upstream system's own source, e.g. 'crm/east'")


def _literal(value: str) -> Any:
    return Literal[value]


class OnePass:
    """Validates and normalises a valid event's JSON bytes in one pass through pydantic-core.

    The envelope and the type's payload are one model per type (a union on `type`), checked straight
    from the bytes. The result equals `validate_object(parse_json(value), types).normalised()` for
    every value it accepts (a property test holds the two equal); it returns None for anything else,
    and the caller then takes that two-step path, which finds the reason code and the detail. A plainly
    valid event says the current version of its type's payload (`dataschema`) or none; it is stamped
    with it by one dict insertion (an older version is upcast on the two-step path).
    """

    def __init__(self, types: dict[str, type[p.Payload]]):
        models = [pydantic.create_model(f"Event_{t.replace('.', '_')}", __base__=CloudEvent,
                                        type=(_literal(t), ...), data=(model, ...),
                                        dataschema=(_literal(schema_urn(t)) | None, None))
                  for t, model in types.items()]
        union: Any = Annotated[Union[tuple(models)], pydantic.Field(discriminator="type")]  # noqa: UP007
        self._adapter: pydantic.TypeAdapter[CloudEvent] = pydantic.TypeAdapter(union)
        self._urns = {t: schema_urn(t) for t in types}

    def normalised(self, value: bytes) -> dict[str, Any] | None:
        """The event as intake records it (as `ValidEvent.normalised`), or None if not plainly valid."""
        try:
            body: dict[str, Any] = self._adapter.validate_json(value).model_dump(mode="json", exclude_none=True)
        except (ValidationError, ValueError, RecursionError):
            return None
        body["dataschema"] = self._urns[body["type"]]
        return body


def validate_inbound(value: bytes) -> ValidEvent:
    """Validate raw inbound bytes: JSON, envelope, and an inbound (not derived) type."""
    inbound = {t: model for t, (model, _) in INBOUND_TYPES.items()}
    valid = validate_object(parse_json(value), inbound)
    check_source(valid.envelope.source)
    return valid


def inbound_topic(event_type: str) -> str:
    """The inbound topic an upstream system publishes this type to."""
    return INBOUND_TYPES[event_type][1]
