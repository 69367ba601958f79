"""Infrastructure for one machine: the configured servers, or embedded ones where none is configured."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from services.common import db, kafka
from services.common.embedded import EmbeddedKafka, EmbeddedPostgres
from services.common.settings import Settings


@dataclass
class Infrastructure:
    """The broker and database in use, and the embedded processes to stop afterwards."""

    settings: Settings
    embedded_kafka: EmbeddedKafka | None = None
    embedded_postgres: EmbeddedPostgres | None = None

    log_dir: Path | None = None

    def stop(self) -> None:
        """Stop whatever was embedded (configured servers are left alone)."""
        if self.embedded_kafka is not None:
            self.embedded_kafka.stop()
        if self.embedded_postgres is not None:
            self.embedded_postgres.stop()

    def database_exited(self) -> int | None:
        """The embedded database's exit status once it has died (reaped), else None (alive, or not embedded)."""
        return self.embedded_postgres.exited() if self.embedded_postgres is not None else None

    def broker_exited(self) -> int | None:
        """The embedded broker's exit status once it has died (reaped), else None (alive, or not embedded)."""
        return self.embedded_kafka.exited() if self.embedded_kafka is not None else None

    def restart_database(self) -> None:
        """Start the embedded database again on its data directory and port (the services reconnect)."""
        assert self.embedded_postgres is not None
        self.embedded_postgres.restart()

    def restart_broker(self) -> None:
        """Start a new embedded broker on the same port, create the topics, and have the relay publish again
        what the services following the history may not have read (the old broker's records are gone)."""
        assert self.embedded_kafka is not None
        self.embedded_kafka.restart(self.log_dir / "tansu.log" if self.log_dir else None)
        asyncio.run(_after_broker_loss(self.settings))


def start_infrastructure(settings: Settings, log_dir: Path | None = None, *,
                         fast_database: bool = False) -> Infrastructure:
    """Start embedded Tansu/PostgreSQL where no server is configured; create topics; migrate.

    `fast_database` turns the embedded PostgreSQL's durability off: for benchmarks only.
    """
    infra = Infrastructure(settings, log_dir=log_dir)
    try:
        if not settings.kafka.bootstrap_servers:
            infra.embedded_kafka = EmbeddedKafka().start(log_dir / "tansu.log" if log_dir else None)
            settings = replace(settings, kafka=replace(settings.kafka,
                                                       bootstrap_servers=infra.embedded_kafka.bootstrap_servers))
        if not settings.database_url:
            infra.embedded_postgres = EmbeddedPostgres(fast=fast_database).start()
            settings = replace(settings, database_url=infra.embedded_postgres.service_url,
                               migration_database_url=infra.embedded_postgres.url)
        infra.settings = settings
        asyncio.run(_prepare(settings))
    except BaseException:
        infra.stop()
        raise
    return infra


async def _prepare(settings: Settings) -> None:
    await kafka.ensure_topics(settings.kafka)
    await db.migrate(settings.migration_url())


async def _after_broker_loss(settings: Settings) -> None:
    await kafka.ensure_topics(settings.kafka)
    conn = await db.connect(settings.migration_url())
    try:
        await conn.execute(REWIND_RELAY, settings.kafka.partitions)
    finally:
        await conn.close()


# Back to the lowest history position any follower of casefeedback.events has applied (a partition a
# follower has no position for counts as 0); followers drop by seq what they applied already.
REWIND_RELAY = """
UPDATE relay_position SET seq = least(seq, coalesce((
    SELECT min(coalesce(p.seq, 0))
    FROM (SELECT DISTINCT grp FROM consumer_positions WHERE topic = 'casefeedback.events') g
    CROSS JOIN generate_series(0, $1::int - 1) AS n(partition)
    LEFT JOIN consumer_positions p ON p.grp = g.grp AND p.partition = n.partition AND p.topic = 'casefeedback.events'
), 0))
"""
