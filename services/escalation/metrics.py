"""Escalation's contract metrics (section 7); labels only from bounded sets.

`casefeedback_deadlines_breached_total` is read from the history, not counted in memory, so that a
restart or a rebalance never sends it back to zero. The history only grows, and every breach this
service records is one `deadline.breached` event of a case whose row carries its partition of
`casefeedback.events`: per partition, the number of such events is monotonic whichever worker owns
the partition. Each worker reads the breaches recorded since it last looked (a range of history
seqs; on start-up, all of them once, through the history's type index) and exports, for each
partition it owns, one series per `procedure` (the case's procedure id), `stage`, `kind` and
`partition` (a bounded extra label), with a 0 for every stage and kind of each configured procedure
(contract 1.1: the first breach must be visible to `increase()`). Each series only grows, so `sum by
(procedure, stage, kind)` of its largest minus its smallest value over a range (or of `increase(...)`)
is right across restarts and rebalances: a series that moves to another worker continues from the
same value.

`casefeedback_deadlines_breach_withdrawn_total` (contract 11.2) is read the same way, from this service's
`deadline.breach_withdrawn` events, with the same labels, exported at 0 from start-up for the same series:
`breached - withdrawn` per series is the breaches that stand, which every alert rule and panel counts.

It is not read from the `deadlines` table's `breached` flags: an extension agreed after a breach
clears the flag (the new target may be breached again), which would make the count go down.

Timeliness (`casefeedback_timeliness_*`) and `casefeedback_complaints_by_outcome` (added to the contract's
metrics) are the report's figures over a window of whole days ending today, by the definitions of
`services/common/figures.py` (`settled`, `latest_outcome`): the dashboard's sum of met over sum of counted,
and its upheld over decided, equal `casefeedback report` over those days.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

COMPLAINTS_OPEN = Gauge("casefeedback_complaints_open", "Open complaints on this worker's partitions",
                        ["stage", "service_area"])
DEADLINES_OVERDUE = Gauge("casefeedback_deadlines_overdue", "Deadlines past due and not met (owned partitions)",
                          ["procedure", "stage", "kind"])
TIMELINESS_RATIO = Gauge("casefeedback_timeliness_ratio",
                         "Share of deadlines settled in the window (met, or fell due unmet) that were met on time",
                         ["stage", "kind", "window"])
TIMELINESS_COUNTED = Gauge("casefeedback_timeliness_counted",
                           "Deadlines settled in the window: met (counted when met) or fell due unmet (when due)",
                           ["stage", "kind", "window"])
TIMELINESS_MET = Gauge("casefeedback_timeliness_met", "Deadlines met on time in the window",
                       ["stage", "kind", "window"])
COMPLAINTS_BY_OUTCOME = Gauge("casefeedback_complaints_by_outcome",
                              "Complaints received in the window by their latest outcome (ongoing: none, or "
                              "escalated since), on this worker's partitions", ["outcome", "service_area", "window"])

BREACHED_NAME = "casefeedback_deadlines_breached"
BREACHED_HELP = "Deadline breaches recorded in the history, on this worker's partitions (read from the history)"
BREACHED_LABELS = ("procedure", "stage", "kind", "partition")


WITHDRAWN_NAME = "casefeedback_deadlines_breach_withdrawn"
WITHDRAWN_HELP = ("Deadline breaches withdrawn (an act recorded after the breach met the deadline in time), on this "
                  "worker's partitions (read from the history)")


class BreachCounter:
    """The collector of a counter read from the history (`casefeedback_deadlines_breached_total`, or the
    withdrawals'): the values the worker last read, as a counter."""

    def __init__(self, name: str = BREACHED_NAME, help_text: str = BREACHED_HELP) -> None:
        self.name, self.help = name, help_text
        self.values: dict[tuple[str, str, str, str], int] = {}

    def set(self, values: Mapping[tuple[str, str, str, str], int]) -> None:
        """Export these (procedure, stage, kind, partition) totals from now on."""
        self.values = dict(values)

    def clear(self) -> None:
        """Export nothing (as a process starts)."""
        self.values = {}

    def describe(self) -> Iterable[Metric]:
        return [CounterMetricFamily(self.name, self.help, labels=BREACHED_LABELS)]

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.help, labels=BREACHED_LABELS)
        for labels, value in sorted(self.values.items()):
            family.add_metric(labels, value)
        yield family


DEADLINES_BREACHED = BreachCounter()
REGISTRY.register(DEADLINES_BREACHED)
BREACHES_WITHDRAWN = BreachCounter(WITHDRAWN_NAME, WITHDRAWN_HELP)
REGISTRY.register(BREACHES_WITHDRAWN)
