"""The broker adapter: topic creation and client construction; aiokafka errors stay in here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from schemas.registry import ALL_TOPICS
from services.common.errors import InfrastructureError
from services.common.settings import KafkaSettings

log = logging.getLogger(__name__)


async def ensure_topics(kafka: KafkaSettings, topics: Iterable[str] = ALL_TOPICS, attempts: int = 20) -> list[str]:
    """Create the contract's topics that do not exist yet; return the names created."""
    for attempt in range(attempts):
        try:
            return await _create_missing(kafka, list(topics))
        except KafkaError as exc:
            if attempt == attempts - 1:
                raise InfrastructureError(f"could not create topics on {kafka.bootstrap_servers}: {exc}") from None
            await asyncio.sleep(0.25)
    return []


async def _create_missing(kafka: KafkaSettings, topics: list[str]) -> list[str]:
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            await admin.create_topics(new_topics(kafka, missing))
            log.info("created topics %s with %d partitions", missing, kafka.partitions)
        return missing
    finally:
        await admin.close()


def new_topics(kafka: KafkaSettings, names: Iterable[str]) -> list[NewTopic]:
    """The topics to create: the configured partitions, replication and (when set) `retention.ms`, so that
    the broker's copies of erased values expire (`CASEFEEDBACK_TOPIC_RETENTION_MS`)."""
    configs = {} if kafka.topic_retention_ms is None else {"retention.ms": str(kafka.topic_retention_ms)}
    return [NewTopic(t, kafka.partitions, kafka.replication_factor, topic_configs=configs) for t in names]


def producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas; no idempotence (Tansu lacks it)."""
    return AIOKafkaProducer(
        **kafka.client_kwargs(), acks="all", linger_ms=5, max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
    )


def consumer(kafka: KafkaSettings, group: str, topics: Iterable[str], **overrides: object) -> AIOKafkaConsumer:
    """A consumer in `group` that never auto-commits: offsets are committed after effects are durable."""
    options: dict[str, object] = {
        "group_id": group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "fetch_max_wait_ms": 100,
        # A group join waits about half the session timeout on Tansu; 6 s keeps start-up short
        # while tolerating a busy event loop. Production may raise it (KAFKA_SESSION_TIMEOUT_MS).
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": max(300, kafka.session_timeout_ms // 6),
        "max_poll_interval_ms": 300000,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **kafka.client_kwargs(), **options)
