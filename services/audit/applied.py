"""How far each live service has applied the history, read in replay's snapshot (contract 11.3).

A service that follows `casefeedback.events` stores, per partition, the last history seq it applied,
in the same transaction as its state (`services/common/positions.py`). The relay publishes each
subject's events on one partition in seq order, so an event is applied by a service exactly when
its seq is at or below that service's position on the subject's partition. Replay rebuilds each
projection from those events only (and, for escalation and learning, from every event the service
derived itself: it recorded them, so it has done that work), and compares the result with the live
state read in the same snapshot: what a service has not applied yet is never a difference.

Replay places a subject on its partition as the relay does (Kafka's default partitioner over the
subject), for `CASEFEEDBACK_PARTITIONS` partitions; the partitions the services stored beside their
cases are checked against it, so a wrong partition count is said, not compared through.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from services.audit import store
from services.audit.differences import Difference
from services.common.relay import _partition

CHECKED_CASES = 200  # stored cases whose partition is checked against replay's placing


def consumer_group(service: str) -> str:
    """The consumer group the workers of `service` join (`Worker.group`), under which its positions are kept."""
    return f"casefeedback-{service}"


@functools.lru_cache(maxsize=1 << 16)
def partition_of(subject: str, partitions: int) -> int:
    """The partition of `casefeedback.events` the relay publishes the subject's events on."""
    return _partition(subject.encode(), partitions)


@dataclass(frozen=True)
class Positions:
    """One service's stored position per partition; `floor` is the lowest of them (at or below it, every event
    is applied whatever its partition, so most events of a caught-up history need no placing)."""

    seqs: Mapping[int, int]
    partitions: int
    floor: int

    @classmethod
    def of(cls, seqs: Mapping[int, int], partitions: int) -> Positions:
        """The positions `seqs` (partition -> seq; a partition absent has applied nothing)."""
        return cls(dict(seqs), partitions, min((seqs.get(p, 0) for p in range(partitions)), default=0))

    def applied(self, subject: str, seq: int) -> bool:
        """Whether the service has applied the event at `seq`, of `subject`."""
        return seq <= self.floor or seq <= self.seqs.get(partition_of(subject, self.partitions), 0)


async def positions_of(conn: asyncpg.Connection, group: str, partitions: int) -> Positions:
    """The positions the service of consumer group `group` has stored."""
    return Positions.of(await store.applied_seqs(conn, group, partitions), partitions)


async def misplaced(conn: asyncpg.Connection, projection: str, table: str, partitions: int) -> list[Difference]:
    """A difference when cases stored in `table` sit on other partitions than replay places them on."""
    placed = await store.case_partitions(conn, table, CHECKED_CASES)
    wrong = [subject for subject, partition in placed if partition_of(subject, partitions) != partition]
    if not wrong:
        return []
    return [Difference(projection, "-", f"{len(wrong)} of {len(placed)} cases checked in {table} are stored on "
                                        f"other partitions than the relay's placing over {partitions} partitions "
                                        f"gives (e.g. {wrong[0]}): set CASEFEEDBACK_PARTITIONS to the partition "
                                        "count of casefeedback.events; the positions cannot be compared otherwise")]
