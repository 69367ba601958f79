"""Exports the metrics service's figures, computed at scrape time from the owned buckets and `now`.

Windows are summed when Prometheus scrapes, so they slide with the clock even when no event
arrives. Only partitions this worker owns are included, so `sum()` across workers is the total.
Scrapes run in a thread (services/common/http.py): the collector reads one consistent `View`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.metrics import domain as d
from services.metrics import satisfaction as sat

SAT_LABELS = ["survey", "question", "respondent_type", "window"]


class Figures(Protocol):
    """What the collector reads: one consistent view, safe to take from a scrape thread."""

    def view(self) -> d.View: ...


class MetricsCollector(Collector):
    """A prometheus_client collector over a worker's figures."""

    def __init__(self, figures: Figures, clock: Callable[[], datetime]):
        self.figures = figures
        self.clock = clock

    def describe(self) -> list[Metric]:
        """Nothing up front: names are checked per worker, and several workers may share a registry in tests."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every family, computed now."""
        view, today = self.figures.view(), d.today_of(self.clock())
        yield from self._counters(view)
        yield from self._volumes(view, today)
        yield from self._satisfaction(view, today)
        yield from self._targets(view)

    def _counters(self, view: d.View) -> Iterator[Metric]:
        buckets = view.buckets
        areas: dict[tuple[str, ...], int] = {(a,): 0 for a in sorted(view.sets.service_areas)}
        yield _counter("casefeedback_compliments", "Compliments received, by service area", ["service_area"],
                       {**areas, **d.totals(buckets, d.COMPLIMENT)})
        yield _counter("casefeedback_complaint_outcomes", "Complaint responses, by stage and outcome",
                       ["stage", "outcome"], d.totals(buckets, d.OUTCOME))
        yield _counter("casefeedback_complaints_received", "Complaints received, by initial stage and service area",
                       ["stage", "service_area"], d.totals(buckets, d.RECEIVED))
        yield _counter("casefeedback_survey_responses", "Survey responses received, by respondent type",
                       ["respondent_type"], d.totals(buckets, d.RESPONSE))
        yield _counter("casefeedback_label_folded", "Label values outside their bounded set, folded into 'other'",
                       ["label"], {**{(label,): 0 for label in d.FOLDABLE}, **d.totals(buckets, d.FOLDED)})

    def _volumes(self, view: d.View, today: int) -> Iterator[Metric]:
        buckets = view.buckets
        areas: dict[tuple[str, ...], int] = {(a, w): 0 for a in sorted(view.sets.service_areas)
                                             for w in d.WINDOWS}
        yield _gauge("casefeedback_compliments_received", "Compliments dated in the window, by service area",
                     ["service_area", "window"], {**areas, **_by_window(buckets, d.COMPLIMENT, today, (0,))})
        yield _gauge("casefeedback_complaints_received", "Complaints received in the window, by service area",
                     ["service_area", "window"], {**areas, **_by_window(buckets, d.RECEIVED, today, (1,))})
        yield _gauge("casefeedback_complaint_outcomes", "Complaint responses dated in the window, by stage and outcome",
                     ["stage", "outcome", "window"], _by_window(buckets, d.OUTCOME, today, (0, 1)))
        yield _gauge("casefeedback_survey_responses_received", "Survey responses dated in the window",
                     ["respondent_type", "window"], _by_window(buckets, d.RESPONSE, today, (0,)))

    def _satisfaction(self, view: d.View, today: int) -> Iterator[Metric]:
        got = sat.satisfaction(view.buckets, view.surveys, view.sets, today)
        yield _gauge("casefeedback_satisfaction_responses", "Answers in the window", SAT_LABELS, got.responses)
        yield _gauge("casefeedback_satisfaction_positive", "Positive answers in the window", SAT_LABELS, got.positive)
        ratios = {k: r for k, n in got.responses.items() if (r := d.ratio(got.positive[k], n)) is not None}
        yield _gauge("casefeedback_satisfaction_ratio",
                     "Share of answers in the window that are positive (this worker's partitions; "
                     "across workers use sum(positive)/sum(responses))", SAT_LABELS, ratios)
        yield _gauge("casefeedback_satisfaction_unmatched_answers",
                     "Answers in the window to surveys or questions not (yet) defined", ["window"],
                     {(w,): got.unmatched.get(w, 0) for w in d.WINDOWS})
        yield _gauge("casefeedback_satisfaction_folded_answers",
                     "Answers in the window to defined questions beyond the series caps, exported as "
                     "survey and question 'other'", ["window"], {(w,): got.folded.get(w, 0) for w in d.WINDOWS})
        yield _gauge("casefeedback_satisfaction_folded_questions",
                     "Defined survey questions beyond the series caps (CASEFEEDBACK_MAX_SATISFACTION_SERIES, "
                     "CASEFEEDBACK_MAX_SURVEY_QUESTIONS)", [], {(): got.folded_questions})

    def _targets(self, view: d.View) -> Iterator[Metric]:
        targets, benchmarks = sat.targets(view)
        yield _gauge("casefeedback_satisfaction_target_ratio", "Target share of positive answers",
                     ["survey", "question"], targets)
        yield _gauge("casefeedback_satisfaction_benchmark_ratio", "Benchmark share of positive answers (e.g. national)",
                     ["survey", "question", "benchmark"], benchmarks)


def _by_window(buckets: d.Buckets, kind: str, today: int, keep: tuple[int, ...]) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for labels, windows in d.windowed(buckets, kind, today).items():
        for window, n in windows.items():
            key = (*(labels[i] for i in keep), window)
            out[key] = out.get(key, 0) + n
    return out


def _counter(name: str, doc: str, labels: list[str], values: Mapping[Any, float]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _gauge(name: str, doc: str, labels: list[str], values: Mapping[Any, float]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family
