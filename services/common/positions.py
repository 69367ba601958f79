"""Per-partition positions of a consumer group in the history, kept with its projection.

Records of `casefeedback.events` carry their history seq; within one partition the relay
publishes them in increasing seq, so any record whose seq is not above the partition's stored
position was applied already (a redelivery or a relay republish) and is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg


async def load(conn: asyncpg.Connection, group: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The stored seq of each partition (0 where none is stored)."""
    parts = list(partitions)
    rows = await conn.fetch(
        "SELECT partition, seq FROM consumer_positions WHERE grp = $1 AND topic = $2 AND partition = any($3::int[])",
        group, topic, parts,
    )
    found = {r["partition"]: int(r["seq"]) for r in rows}
    return {p: found.get(p, 0) for p in parts}


async def save(conn: asyncpg.Connection, group: str, topic: str, seqs: Mapping[int, int]) -> None:
    """Store new positions; call inside the same transaction as the projection's writes."""
    await conn.executemany(
        "INSERT INTO consumer_positions(grp, topic, partition, seq) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (grp, topic, partition) DO UPDATE SET seq = greatest(consumer_positions.seq, EXCLUDED.seq)",
        [(group, topic, p, s) for p, s in seqs.items()],
    )
