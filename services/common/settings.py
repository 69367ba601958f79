"""Settings, read once from the environment at each entry point and passed down.

Connection settings use the conventional names (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`,
`KAFKA_SECURITY_PROTOCOL`, ...); everything of casefeedback's own is prefixed `CASEFEEDBACK_`.
Where neither broker nor database is set, the details written by a running `casefeedback up`
(its run file) are used, so `emit`, `report` and `replay` find the embedded system by themselves.

Each job connects to the database with its own setting, `CASEFEEDBACK_<JOB>_DATABASE_URL` (intake,
escalation, learning, metrics, relay, erasure), so that each process holds only its own role's
credential; `DATABASE_URL` is the default for a job without one (a single-role deployment) and the URL
of the commands that only read.

Every secret (`DATABASE_URL`, each job's URL, `CASEFEEDBACK_MIGRATION_DATABASE_URL`, `KAFKA_SASL_PASSWORD`)
may instead come from a file named by `NAME_FILE`, as Docker and Kubernetes mount secrets.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from services.common.errors import ConfigurationError
from services.common.figures import LabelValues
from services.common.labels import load_labels

# The jobs that connect to the database with a role of their own (the four services, the relay, erasure).
JOBS = ("intake", "escalation", "learning", "metrics", "relay", "erasure")


def job_url_variable(job: str) -> str:
    """The environment variable of one job's database URL, e.g. CASEFEEDBACK_METRICS_DATABASE_URL."""
    return f"CASEFEEDBACK_{job.upper()}_DATABASE_URL"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None


def _retention_ms(env: Mapping[str, str], name: str) -> int | None:
    """A topic retention in milliseconds (None: the broker's default); erased values must expire, so never -1."""
    value = _int(env, name, 0)
    if value < 0:
        raise ConfigurationError(f"{name} must be a positive number of milliseconds (e.g. 2592000000 for 30 days), "
                                 f"got {value}: Kafka's -1 would keep every copy of an erased value forever")
    return value or None


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """`name` from the environment, or the content of the file `name`_FILE names (less its trailing newline)."""
    value, path = env.get(name) or None, env.get(f"{name}_FILE") or None
    if path is None:
        return value
    if value is not None:
        raise ConfigurationError(f"{name} and {name}_FILE are both set; set only one")
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{name}_FILE: cannot read {path}: {exc}") from None
    # Secret files usually end with the newline an editor or `echo` adds; nothing else is stripped.
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigurationError(f"{name}_FILE: {path} is empty; write the secret into it or unset {name}_FILE")
    return text


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (the first when unset)."""
    raw = env.get(name) or allowed[0]
    if raw not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return raw


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LATENESS = re.compile(r"^\s*([^=\s]+)\s*=\s*(\d+(?:\.\d+)?)([smhd])\s*$")


def _lateness(env: Mapping[str, str], name: str) -> dict[str, timedelta]:
    """`source=26h,other=90m` as each inbound source's declared lateness (contract 11.2)."""
    out: dict[str, timedelta] = {}
    for entry in filter(str.strip, env.get(name, "").split(",")):
        match = _LATENESS.match(entry)
        if match is None:
            raise ConfigurationError(f"{name}: {entry.strip()!r} must be source=<number><s|m|h|d>, e.g. crm/east=26h")
        source, amount, unit = match.groups()
        if source in out:
            raise ConfigurationError(f"{name}: source {source!r} is declared twice")
        out[source] = timedelta(seconds=float(amount) * _UNITS[unit])
    return out


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the broker; TLS and SASL pass straight through to aiokafka."""

    bootstrap_servers: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    partitions: int = 6
    replication_factor: int = 1
    session_timeout_ms: int = 6000
    # retention.ms of topics casefeedback creates; None leaves the broker's default (7 days on Apache Kafka)
    topic_retention_ms: int | None = None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        if not self.bootstrap_servers:
            raise ConfigurationError(
                "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or start `casefeedback up` first"
            )
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            import ssl

            from aiokafka.helpers import create_ssl_context

            ctx: ssl.SSLContext = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
            kwargs["ssl_context"] = ctx
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs


@dataclass(frozen=True)
class Settings:
    """Everything a casefeedback process needs to know, from one read of the environment."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    database_url: str | None = field(default=None, repr=False)
    # Each job's own URL (JOBS); a job without one uses database_url.
    job_database_urls: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    # The schema owner's URL, for migrations only; the services' role (DATABASE_URL) owns nothing.
    migration_database_url: str | None = field(default=None, repr=False)
    home: Path = field(default_factory=lambda: Path.home() / ".casefeedback")
    procedures_dir: Path | None = None
    default_procedure: str = "spso-mchp"
    max_record_bytes: int = 256 * 1024
    out_of_order_grace_s: float = 30.0
    # How late each inbound source's records can arrive (CASEFEEDBACK_SOURCE_LATENESS, contract 11.2): a case
    # received from it breaches only once that has passed after the due instant. Live and replay read it alike.
    source_lateness: Mapping[str, timedelta] = field(default_factory=dict)
    service_areas: tuple[str, ...] = ()
    # Bounded label values (service areas, respondent types, themes): CASEFEEDBACK_LABELS_FILE or the built-in
    # services/common/labels.yaml; CASEFEEDBACK_SERVICE_AREAS replaces its service areas.
    labels_file: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 0
    batch_size: int = 2000
    tick_interval_s: float = 0.25
    log_level: str = "INFO"
    parent_pid: int | None = None
    # Where the relay runs: "worker" (a standby relay in every worker process, one leads) or "separate"
    # (only in `casefeedback run relay` processes, as `up` and deploy/ run it).
    relay: str = "worker"
    # Caps on the satisfaction series the metrics service exports (services/metrics/README.md).
    max_satisfaction_series: int = 4000
    max_survey_questions: int = 20

    @property
    def labels(self) -> LabelValues:
        """The configured label values (read from the labels file once per settings object)."""
        return _labels(self.labels_file, self.service_areas)

    def require_database(self) -> str:
        """The database URL, or a clear error saying how to provide one."""
        if not self.database_url:
            raise ConfigurationError("no database: set DATABASE_URL or start `casefeedback up` first")
        return self.database_url

    def database_url_for(self, job: str) -> str:
        """The URL job `job` connects with: its own when set, else the one database URL."""
        own = self.job_database_urls.get(job)
        if own:
            return own
        if not self.database_url:
            raise ConfigurationError(f"no database for {job}: set {job_url_variable(job)} (its own role) or "
                                     "DATABASE_URL, or start `casefeedback up` first")
        return self.database_url

    def migration_url(self) -> str:
        """The URL migrations run with: the schema owner's when given, else the one database URL."""
        return self.migration_database_url or self.require_database()

    @property
    def run_file(self) -> Path:
        """Where a running `casefeedback up` writes how to reach its broker and database."""
        return self.home / "run.json"

    def with_running_system(self) -> Settings:
        """Fill missing broker/database from the run file of a running `casefeedback up`."""
        if self.kafka.bootstrap_servers and (self.database_url or self.job_database_urls):
            return self
        try:
            run = json.loads(self.run_file.read_text())
        except (OSError, ValueError):
            return self
        kafka = self.kafka
        if not kafka.bootstrap_servers:
            kafka = replace(kafka, bootstrap_servers=run.get("kafka_bootstrap_servers"))
        if self.database_url or self.job_database_urls:
            return replace(self, kafka=kafka)
        return replace(self, kafka=kafka, database_url=run.get("database_url"),
                       job_database_urls=dict(run.get("job_database_urls") or {}),
                       migration_database_url=run.get("migration_database_url"))


@functools.lru_cache(maxsize=8)
def _labels(path: Path | None, service_areas: tuple[str, ...]) -> LabelValues:
    values = load_labels(path)
    return replace(values, service_areas=service_areas) if service_areas else values


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment (once, at an entry point)."""
    env = os.environ if env is None else env
    kafka = KafkaSettings(
        bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        security_protocol=env.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
        sasl_mechanism=env.get("KAFKA_SASL_MECHANISM") or None,
        sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
        sasl_password=_secret(env, "KAFKA_SASL_PASSWORD"),
        ssl_cafile=env.get("KAFKA_SSL_CAFILE") or None,
        ssl_certfile=env.get("KAFKA_SSL_CERTFILE") or None,
        ssl_keyfile=env.get("KAFKA_SSL_KEYFILE") or None,
        partitions=_int(env, "CASEFEEDBACK_PARTITIONS", 6),
        replication_factor=_int(env, "CASEFEEDBACK_REPLICATION_FACTOR", 1),
        session_timeout_ms=_int(env, "KAFKA_SESSION_TIMEOUT_MS", 6000),
        topic_retention_ms=_retention_ms(env, "CASEFEEDBACK_TOPIC_RETENTION_MS"),
    )
    home = env.get("CASEFEEDBACK_HOME")
    procedures = env.get("CASEFEEDBACK_PROCEDURES_DIR")
    areas = env.get("CASEFEEDBACK_SERVICE_AREAS", "")
    labels_file = env.get("CASEFEEDBACK_LABELS_FILE")
    settings = Settings(
        kafka=kafka,
        database_url=_secret(env, "DATABASE_URL"),
        job_database_urls={job: url for job in JOBS if (url := _secret(env, job_url_variable(job)))},
        migration_database_url=_secret(env, "CASEFEEDBACK_MIGRATION_DATABASE_URL"),
        home=Path(home) if home else Path.home() / ".casefeedback",
        procedures_dir=Path(procedures) if procedures else None,
        default_procedure=env.get("CASEFEEDBACK_DEFAULT_PROCEDURE", "spso-mchp"),
        max_record_bytes=_int(env, "CASEFEEDBACK_MAX_RECORD_BYTES", 256 * 1024),
        out_of_order_grace_s=_float(env, "CASEFEEDBACK_OUT_OF_ORDER_GRACE_S", 30.0),
        source_lateness=_lateness(env, "CASEFEEDBACK_SOURCE_LATENESS"),
        service_areas=tuple(a.strip() for a in areas.split(",") if a.strip()),
        labels_file=Path(labels_file) if labels_file else None,
        http_host=env.get("CASEFEEDBACK_HTTP_HOST", "127.0.0.1"),
        http_port=_int(env, "CASEFEEDBACK_HTTP_PORT", 0),
        batch_size=_int(env, "CASEFEEDBACK_BATCH_SIZE", 2000),
        tick_interval_s=_float(env, "CASEFEEDBACK_TICK_INTERVAL_S", 0.25),
        log_level=env.get("CASEFEEDBACK_LOG_LEVEL", "INFO"),
        parent_pid=_int(env, "CASEFEEDBACK_PARENT_PID", 0) or None,
        relay=_choice(env, "CASEFEEDBACK_RELAY", ("worker", "separate")),
        max_satisfaction_series=_int(env, "CASEFEEDBACK_MAX_SATISFACTION_SERIES", 4000),
        max_survey_questions=_int(env, "CASEFEEDBACK_MAX_SURVEY_QUESTIONS", 20),
    )
    settings.labels  # noqa: B018 - a broken labels file is a configuration error at start-up, not at first use
    return settings
