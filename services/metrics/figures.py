"""The metrics worker's figures in memory: changed on the event loop, read by scrape threads.

A scrape takes the lock only to pick up the current merged buckets and definitions, then reads
them without it: the loop never changes in place anything a scrape may hold (the merged map is
copied before the first change after a scrape, each series' day counts and the definitions are
replaced, not updated). The loop holds the lock only for one batch's deltas or one partition.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from services.metrics import domain as d


class LiveFigures:
    """The owned partitions' buckets, their sum and the survey definitions, safe to view from any thread."""

    def __init__(self, sets: d.LabelSets):
        self.sets = sets
        self.partitions: dict[int, d.Buckets] = {}  # the loop's own: scrapes never read these
        self.surveys: dict[str, d.Survey] = {}
        self._merged: d.Buckets = {}
        self._lent = False  # a scrape may be reading `_merged`
        self._lock = threading.Lock()

    def view(self) -> d.View:
        """What a scrape reads: consistent, and left unchanged while it is read."""
        with self._lock:
            self._lent = True
            return d.View(self._merged, frozenset(self.partitions), self.surveys, self.sets)

    def load(self, loaded: Mapping[int, d.Buckets]) -> None:
        """Take (or take again) the stored buckets of newly assigned partitions."""
        for partition, buckets in loaded.items():
            self.drop([partition])
            with self._lock:
                _add(self._writable(), buckets, 1)
                self.partitions[partition] = buckets

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions."""
        for partition in partitions:
            buckets = self.partitions.get(partition)
            if buckets is None:
                continue
            with self._lock:
                _add(self._writable(), buckets, -1)
                del self.partitions[partition]

    def adopt(self, deltas: Mapping[int, d.Buckets], defined: Iterable[d.Survey]) -> None:
        """Add a stored batch's counts (partitions revoked meanwhile are left to their new owner)."""
        owned = {p: delta for p, delta in deltas.items() if p in self.partitions}
        for partition, delta in owned.items():
            d.add_into(self.partitions[partition], delta)
        with self._lock:
            merged = self._writable()
            for delta in owned.values():
                _add(merged, delta, 1)
        self.keep_surveys(defined)

    def keep_surveys(self, surveys: Iterable[d.Survey]) -> None:
        """Keep each definition unless a later one of the same survey is held."""
        newer = [s for s in surveys if (held := self.surveys.get(s.survey_id)) is None or held.seq < s.seq]
        if not newer:
            return
        replaced = dict(self.surveys)
        for survey in newer:
            d.keep_survey(replaced, survey)
        with self._lock:
            self.surveys = replaced

    def compact(self, partition: int, today: int) -> None:
        """Fold the partition's old days into its archive count (figures unchanged)."""
        if partition in self.partitions:
            d.compact(self.partitions[partition], today)
            merged = d.merge(self.partitions.values())
            with self._lock:
                self._merged, self._lent = merged, False

    def _writable(self) -> d.Buckets:
        """The merged map, copied first if a scrape may be reading it (call with the lock held)."""
        if self._lent:
            self._merged, self._lent = dict(self._merged), False
        return self._merged


def _add(merged: d.Buckets, delta: d.Buckets, sign: int) -> None:
    """Add (sign 1) or take away (-1) `delta`, replacing each touched series' day counts, never updating them."""
    for key, days in delta.items():
        counts = dict(merged.get(key, {}))
        for day, n in days.items():
            counts[day] = counts.get(day, 0) + sign * n
            if not counts[day]:
                del counts[day]
        if counts:
            merged[key] = counts
        else:
            merged.pop(key, None)
