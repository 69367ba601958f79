"""The event contract in code: CloudEvents envelope and payload models (contract sections 1, 3, 4)."""

from schemas.envelope import CloudEvent
from schemas.registry import (
    ALERT_TYPES,
    ALL_TOPICS,
    ALL_TYPES,
    DERIVED_TYPES,
    INBOUND_TOPICS,
    INBOUND_TYPES,
    Rejection,
    ValidEvent,
    inbound_topic,
    validate_inbound,
    validate_object,
)

__all__ = [
    "ALL_TOPICS",
    "ALL_TYPES",
    "ALERT_TYPES",
    "DERIVED_TYPES",
    "INBOUND_TOPICS",
    "INBOUND_TYPES",
    "CloudEvent",
    "Rejection",
    "ValidEvent",
    "inbound_topic",
    "validate_inbound",
    "validate_object",
]
