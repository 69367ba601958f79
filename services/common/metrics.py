"""Metrics that every service shares (contract section 7); service-specific ones live with each service."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "casefeedback_events", "Events seen by a service, by type and result", ["service", "type", "result"]
)
DEADLETTERS = Counter("casefeedback_deadletter", "Records sent to feedback.deadletter, by reason", ["reason"])
EVENT_DELAY = Histogram(
    "casefeedback_event_delay_seconds",
    "Seconds from intake accepting an event to this service having applied it",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
