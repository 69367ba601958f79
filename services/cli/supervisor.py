"""What `up` watches beside its workers: the embedded broker and database, and whether the workers reach them.

A dead embedded database is started again on its data directory (nothing committed is lost; the
workers wait and reconnect). A dead embedded broker took the records it held in memory with it: a new
one is started on the same port with the topics, the relay publishes again from the lowest position
any follower applied, and the workers are restarted so that none keeps an offset of the old one.
Whatever the workers' `/health` says about reaching their servers is printed once per change.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from services.common.errors import InfrastructureError
from services.common.infra import Infrastructure

HEALTH_POLL_S = 2.0
OUTAGES = ("broker unreachable", "database unreachable")


def health_of(base_url: str) -> dict[str, object]:
    """A worker's /health answer (503 included); {} when it does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=0.5) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            return dict(json.loads(exc.read()))
        except ValueError:
            return {}
    except (OSError, ValueError):
        return {}


@dataclass
class InfraWatch:
    """Revives the embedded servers and tells what the workers cannot reach, one line per change."""

    infra: Infrastructure
    told: dict[str, list[str]] = field(default_factory=dict)
    _next_poll: float = 0.0

    def revive(self, restart_services: Callable[[], None]) -> None:
        """Restart an embedded database or broker that died (the services too, after a broker)."""
        status = self.infra.database_exited()
        if status is not None:
            pg = self.infra.embedded_postgres
            assert pg is not None
            _say(f"database: embedded PostgreSQL exited ({_status(status)}); restarting it on the same data "
                 f"directory {pg.data_dir}; the services wait and reconnect")
            _try(self.infra.restart_database, "database")
        status = self.infra.broker_exited()
        if status is not None:
            where = self.infra.settings.kafka.bootstrap_servers
            _say(f"broker: embedded Tansu exited ({_status(status)}); inbound records not yet taken by intake were "
                 f"lost with it (it kept them in memory); restarting it on {where} with the topics, and the "
                 "services with it")
            if _try(self.infra.restart_broker, "broker"):
                restart_services()

    def tell(self, urls: Iterable[tuple[str, str]]) -> None:
        """Every few seconds, ask the workers' /health; print a line when what they cannot reach changes."""
        if time.monotonic() < self._next_poll:
            return
        self._next_poll = time.monotonic() + HEALTH_POLL_S
        now: dict[str, list[str]] = {}
        for service, base_url in urls:
            status = str(health_of(base_url).get("status", ""))
            for outage in OUTAGES:
                if outage in status:
                    now.setdefault(outage, []).append(service)
        for outage in OUTAGES:
            if sorted(now.get(outage, [])) != sorted(self.told.get(outage, [])):
                _tell_change(outage, now.get(outage, []))
        self.told = now


def _tell_change(outage: str, services: list[str]) -> None:
    if services:
        _say(f"warning: {outage} (reported by {', '.join(sorted(services))}); they wait and reconnect, "
             "/health answers 503 meanwhile")
    else:
        _say(f"{outage.replace('unreachable', 'reachable')} again")


def _try(restart: Callable[[], None], what: str) -> bool:
    try:
        restart()
        return True
    except InfrastructureError as exc:
        _say(f"{what}: could not restart it ({exc}); trying again")
        return False


def _status(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def _say(line: str) -> None:
    print(line, flush=True)
