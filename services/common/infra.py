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

    def stop(self) -> None:
        """Stop whatever was embedded (configured servers are left alone)."""
        if self.embedded_kafka is not None:
            self.embedded_kafka.stop()
        if self.embedded_postgres is not None:
            self.embedded_postgres.stop()


def start_infrastructure(settings: Settings, log_dir: Path | None = None) -> Infrastructure:
    """Start embedded Tansu/PostgreSQL where no server is configured; create topics; migrate."""
    infra = Infrastructure(settings)
    try:
        if not settings.kafka.bootstrap_servers:
            infra.embedded_kafka = EmbeddedKafka().start(log_dir / "tansu.log" if log_dir else None)
            settings = replace(settings, kafka=replace(settings.kafka,
                                                       bootstrap_servers=infra.embedded_kafka.bootstrap_servers))
        if not settings.database_url:
            infra.embedded_postgres = EmbeddedPostgres().start()
            settings = replace(settings, database_url=infra.embedded_postgres.url)
        infra.settings = settings
        asyncio.run(_prepare(settings))
    except BaseException:
        infra.stop()
        raise
    return infra


async def _prepare(settings: Settings) -> None:
    await kafka.ensure_topics(settings.kafka)
    await db.migrate(settings.require_database())
