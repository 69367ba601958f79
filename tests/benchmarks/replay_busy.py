"""Replay on a busy system: `casefeedback replay` run three times while 300 events a second of ordinary backdated
traffic flow through a fresh `casefeedback up` (contract 11.3).

The traffic is the soak's (`soak_backdated.interleaved`: complaints answered in time, late or never, closures,
compliments and survey responses, event times months in the past, each case's acts hundreds of records apart),
sent paced until the last replay has ended, so every replay reads while intake records, the workers apply
batches and the deadline ticks fire. Each replay's exit code and differences are printed, with how many events
each service had not applied yet at the replay's snapshot (left out of its comparison). The goal: exit 0 every
time, since nothing is wrong.

Run: python -m tests.benchmarks.replay_busy [--rate 300] [--replays 3] [--warmup 20] [--gap 5] [--quick]
     (--quick: a 4 s warm-up and 1 s between replays, to prove it runs)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.registry import inbound_topic
from services.common.settings import KafkaSettings
from tests.benchmarks.soak_backdated import interleaved
from tests.e2e.conftest import UpProcess, start_up, stop_up

FULL = {"warmup": 20.0, "gap": 5.0}
QUICK = {"warmup": 4.0, "gap": 1.0}
CHUNK = 2000  # events made at a time; the stream is cut when the last replay ends
DIFFERENCES = re.compile(r"^(\d+) difference\(s\)", re.M)
BEHIND = re.compile(r"^compared at the services' positions[;:] (.*)$", re.M)
HEAD = re.compile(r"^chain head: seq (\d+)", re.M)


def stream(seed: int) -> Iterator[dict[str, Any]]:
    """The soak's traffic without end: chunk after chunk, each chunk's cases, compliments and responses its own."""
    for chunk in itertools.count(seed):
        for event in interleaved(CHUNK, chunk, window=300):
            if event["type"] != "survey.defined":  # each chunk defines its own survey
                event = {**event, "subject": f"{event['subject']}-{chunk}"}
            yield event


class Traffic:
    """Backdated events sent at `rate` per second from a thread of its own, until stopped."""

    def __init__(self, kafka: KafkaSettings, rate: float, seed: int = 1):
        self.kafka, self.rate, self.seed = kafka, rate, seed
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._send()), daemon=True)
        self.error: BaseException | None = None

    async def _send(self) -> None:
        producer = AIOKafkaProducer(**self.kafka.client_kwargs(), linger_ms=5)
        await producer.start()
        try:
            t0 = time.monotonic()
            for event in stream(self.seed):
                if self.stop.is_set():
                    break
                await producer.send(inbound_topic(event["type"]), json.dumps(event).encode(),
                                    key=event["subject"].encode())
                self.sent += 1
                await asyncio.sleep(max(0.0, t0 + self.sent / self.rate - time.monotonic()))
            await producer.flush()
        except BaseException as exc:  # reported by the main thread, which decides the run
            self.error = exc
        finally:
            await producer.stop()


def one_replay(up: UpProcess, n: int, traffic: Traffic) -> dict[str, Any]:
    """Run `casefeedback replay` once, as an auditor would in office hours, and read what it said."""
    sent_before, started = traffic.sent, time.monotonic()
    replayed = up.cli("replay", timeout=600)
    out = replayed.stdout
    differences = DIFFERENCES.search(out)
    behind, head = BEHIND.search(out), HEAD.search(out)
    tail = [] if replayed.returncode == 0 else out.strip().splitlines()[-6:] + replayed.stderr.splitlines()[-3:]
    return {"replay": n, "exit": replayed.returncode, "differences": int(differences[1]) if differences else 0,
            "history_seq": int(head[1]) if head else None, "seconds": round(time.monotonic() - started, 1),
            "sent_meanwhile": traffic.sent - sent_before, "behind": behind[1] if behind else "-",
            "during_traffic": traffic.thread.is_alive() and not traffic.stop.is_set(),
            "tail": tail}


def run(rate: float, replays: int, warmup: float, gap: float) -> list[dict[str, Any]]:
    """A fresh `casefeedback up`, traffic at `rate`, and `replays` replays while it flows."""
    home = Path(tempfile.mkdtemp(prefix="casefeedback-replay-busy-"))
    up = start_up(home)
    try:
        traffic = Traffic(KafkaSettings(bootstrap_servers=up.run_info["kafka_bootstrap_servers"]), rate)
        traffic.thread.start()
        time.sleep(warmup)
        results = []
        for n in range(1, replays + 1):
            results.append(one_replay(up, n, traffic))
            print(f"replay {n}: {json.dumps(results[-1])}", flush=True)
            time.sleep(gap if n < replays else 0)
        traffic.stop.set()
        traffic.thread.join(timeout=30)
        if traffic.error is not None:
            raise RuntimeError(f"the traffic stopped: {traffic.error!r}")
        print(f"traffic: {traffic.sent:,} events sent at {rate:g} events/s", flush=True)
        return results
    finally:
        stop_up(up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300, help="events per second (default 300)")
    parser.add_argument("--replays", type=int, default=3, help="replays during the traffic (default 3)")
    parser.add_argument("--warmup", type=float, help=f"seconds of traffic before the first (default {FULL['warmup']})")
    parser.add_argument("--gap", type=float, help=f"seconds between replays (default {FULL['gap']})")
    parser.add_argument("--quick", action="store_true", help="short warm-up and gaps, in seconds: prove it runs")
    args = parser.parse_args()
    for name, default in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    results = run(args.rate, args.replays, args.warmup, args.gap)
    codes = ", ".join(str(r["exit"]) for r in results)
    failed = any(r["exit"] != 0 or not r["during_traffic"] for r in results)
    verdict = "FAILED" if failed else "every replay exited 0"
    print(f"replay_busy: {len(results)} replay(s) during {args.rate:g} events/s: exit codes {codes}; "
          f"differences {', '.join(str(r['differences']) for r in results)}; {verdict}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
