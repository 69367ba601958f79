"""Shared fixtures: the broker and database start once per test session.

On this machine the embedded Tansu broker and embedded PostgreSQL serve; `KAFKA_BOOTSTRAP_SERVERS`
and `DATABASE_URL` point the tests at real servers instead, and where a Docker engine answers and
`CASEFEEDBACK_TEST_DOCKER=1` is set, testcontainers starts Apache Kafka and PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from services.common.infra import Infrastructure, start_infrastructure
from services.common.settings import Settings, load_settings
from tests.helpers import register_roles


def _docker_settings(base: Settings, stack: list[object]) -> Settings:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.postgres import PostgresContainer

    kafka = KafkaContainer().with_kraft()
    pg = PostgresContainer("postgres:16", driver=None)
    kafka.start()
    pg.start()
    stack.extend([kafka, pg])
    url = pg.get_connection_url()
    return replace(base, kafka=replace(base.kafka, bootstrap_servers=kafka.get_bootstrap_server()), database_url=url)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:  # no engine, no socket, no permission: the embedded path serves
        return False


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    """The session's broker and database (embedded unless configured), with topics and migrations."""
    home = tmp_path_factory.mktemp("casefeedback-home")
    settings = replace(load_settings(), home=home, out_of_order_grace_s=2.0)
    stack: list[object] = []
    if os.environ.get("CASEFEEDBACK_TEST_DOCKER") == "1" and _docker_answers():
        settings = _docker_settings(settings, stack)
    infrastructure = start_infrastructure(settings, log_dir=Path(home))
    if infrastructure.embedded_postgres is not None:
        register_roles(infrastructure.embedded_postgres)
    yield infrastructure
    infrastructure.stop()
    for container in stack:
        container.stop()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def settings(infra: Infrastructure) -> Settings:
    """Settings that reach the session's broker and database; `database_url` is the role that does every job at
    once (`casefeedback_service`), for tests that act as several services (a worker run by `tests.helpers.running`
    connects as its own service's role)."""
    return infra.settings


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on the session's database, as the role that does every job (the tests append inbound
    events as intake would and read what the workers derived)."""
    p = await asyncpg.create_pool(settings.require_database(), min_size=1, max_size=10)
    assert p is not None
    yield p
    await p.close()
