"""Escalation's contract metrics (section 7); labels only from bounded sets."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

COMPLAINTS_OPEN = Gauge("casefeedback_complaints_open", "Open complaints on this worker's partitions",
                        ["stage", "service_area"])
DEADLINES_OVERDUE = Gauge("casefeedback_deadlines_overdue", "Deadlines past due and not met (owned partitions)",
                          ["stage", "kind"])
DEADLINES_BREACHED = Counter("casefeedback_deadlines_breached", "Deadline breaches this worker raised",
                             ["stage", "kind"])
TIMELINESS_RATIO = Gauge("casefeedback_timeliness_ratio", "Share of deadlines falling due in the window that were met",
                         ["stage", "kind", "window"])
TIMELINESS_COUNTED = Gauge("casefeedback_timeliness_counted", "Deadlines falling due in the window",
                           ["stage", "kind", "window"])
TIMELINESS_MET = Gauge("casefeedback_timeliness_met", "Deadlines falling due in the window and met on time",
                       ["stage", "kind", "window"])

