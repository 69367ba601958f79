"""`casefeedback run SERVICE`: one worker process of a service (what `up` and deploy/ start)."""

from __future__ import annotations

import argparse
import functools
import importlib

from services.common.runtime import run_process, run_relay, run_worker
from services.common.settings import Settings
from services.common.worker import Worker

HELP = "run one worker of a service (intake, escalation, learning, metrics), or the relay, in the foreground"
# Service name -> "module:WorkerClass"; the one table of what a service is.
SERVICES: dict[str, str] = {
    "intake": "services.intake.worker:IntakeWorker",
    "escalation": "services.escalation.worker:EscalationWorker",
    "learning": "services.learning.worker:LearningWorker",
    "metrics": "services.metrics.worker:MetricsWorker",
}


# The relay publishes the history to casefeedback.events; with CASEFEEDBACK_RELAY=separate the workers leave it
# to `run relay` processes (one leads, the others stand by), as `up` and deploy/ run it.
RELAY = "relay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=sorted([*SERVICES, RELAY]))
    parser.add_argument("--port", type=int, default=None, help="HTTP port for /metrics and /health (0: any free)")


def worker_class(service: str) -> type[Worker]:
    """The worker class that implements `service`."""
    module_name, cls_name = SERVICES[service].split(":")
    cls: type[Worker] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def run(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    if args.port is not None:
        settings = replace(settings, http_port=args.port)
    settings = settings.with_running_system()
    if args.service == RELAY:
        return run_process(RELAY, functools.partial(run_relay, settings), settings)
    return run_worker(worker_class(args.service), settings)
