"""Per-partition positions of a consumer group in the history, kept with its projection.

Records of `casefeedback.events` carry their history seq; within one partition the relay
publishes them in increasing seq, so any record whose seq is not above the partition's stored
position was applied already (a redelivery or a relay republish) and is skipped. Beside the seq,
the history's chain hash at it is kept: if the history later holds another event there (or none),
committed history was lost, and the consumer stops instead of skipping or double-counting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg


async def load(conn: asyncpg.Connection, group: str, topic: str,
               partitions: Iterable[int]) -> dict[int, tuple[int, bytes | None]]:
    """The stored seq of each partition and the history's hash at it (0 and None where none is stored)."""
    parts = list(partitions)
    rows = await conn.fetch(
        "SELECT partition, seq, hash FROM consumer_positions "
        "WHERE grp = $1 AND topic = $2 AND partition = any($3::int[])",
        group, topic, parts,
    )
    found = {r["partition"]: (int(r["seq"]), bytes(r["hash"]) if r["hash"] is not None else None) for r in rows}
    return {p: found.get(p, (0, None)) for p in parts}


async def save(conn: asyncpg.Connection, group: str, topic: str, seqs: Mapping[int, tuple[int, bytes]]) -> None:
    """Store new positions with the history's hash at each; call inside the projection's transaction."""
    await conn.executemany(
        "INSERT INTO consumer_positions AS c (grp, topic, partition, seq, hash) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (grp, topic, partition) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash "
        "WHERE c.seq < EXCLUDED.seq",
        [(group, topic, p, s, h) for p, (s, h) in seqs.items()],
    )
