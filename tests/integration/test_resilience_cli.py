"""Commands facing a broker or database that is not there: one clear line and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from services.common.embedded import free_port
from services.common.infra import Infrastructure

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples" / "inbound.jsonl"


def _cli(home: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**base, "CASEFEEDBACK_HOME": str(home),
                          **env}, capture_output=True, text=True, timeout=timeout)


def _one_clear_line(stderr: str, *words: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    for word in words:
        assert word in lines[0], stderr


def test_run_exits_2_with_one_line_when_the_database_is_unreachable(infra: Infrastructure, tmp_path: Path) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/casefeedback"
    res = _cli(tmp_path, "run", "intake", KAFKA_BOOTSTRAP_SERVERS=infra.settings.kafka.bootstrap_servers or "",
               DATABASE_URL=dead, CASEFEEDBACK_LOG_LEVEL="WARNING")
    assert res.returncode == 2, res.stderr
    _one_clear_line(res.stderr, "database")


def test_emit_exits_2_with_one_line_when_the_broker_is_down(tmp_path: Path) -> None:
    res = _cli(tmp_path, "emit", str(EXAMPLES), KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert res.returncode == 2, res.stderr
    _one_clear_line(res.stderr, "broker")


def test_emit_exits_2_with_one_line_when_the_run_file_is_stale(tmp_path: Path) -> None:
    dead_pid = _a_dead_pid()
    (tmp_path / "run.json").write_text(json.dumps({
        "pid": dead_pid, "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/casefeedback"}))
    res = _cli(tmp_path, "emit", str(EXAMPLES))
    assert res.returncode == 2, res.stderr
    _one_clear_line(res.stderr, "run.json", "not running")


def _a_dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
