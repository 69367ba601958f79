"""Settings read from the environment: defaults, and a clear error for a value that cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli.main import main
from services.common.errors import ConfigurationError
from services.common.settings import Settings, load_settings


def test_the_relay_runs_in_every_worker_unless_told_it_runs_separately() -> None:
    assert load_settings({}).relay == "worker"
    assert load_settings({"CASEFEEDBACK_RELAY": "separate"}).relay == "separate"
    with pytest.raises(ConfigurationError, match="CASEFEEDBACK_RELAY must be one of worker, separate, got 'both'"):
        load_settings({"CASEFEEDBACK_RELAY": "both"})


def test_a_bad_setting_is_a_message_and_exit_code_2(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CASEFEEDBACK_RELAY", "both")
    assert main(["run", "relay"]) == 2
    assert "CASEFEEDBACK_RELAY must be one of worker, separate" in capsys.readouterr().err


# --- secrets from files (the Docker and Kubernetes secrets convention) ---------------------------

SECRETS = ("DATABASE_URL", "CASEFEEDBACK_MIGRATION_DATABASE_URL", "KAFKA_SASL_PASSWORD")


@pytest.mark.parametrize("name", SECRETS)
def test_a_secret_comes_from_the_file_named_by_name_file_without_its_trailing_newline(
        name: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("postgresql://casefeedback_service:s3cret@db/casefeedback\n")
    settings = load_settings({f"{name}_FILE": str(secret)})
    assert _secret_of(settings, name) == "postgresql://casefeedback_service:s3cret@db/casefeedback"


def test_only_the_trailing_newline_of_a_secret_file_is_dropped(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b" pass word \r\n")
    assert load_settings({"KAFKA_SASL_PASSWORD_FILE": str(secret)}).kafka.sasl_password == " pass word "


@pytest.mark.parametrize("name", SECRETS)
def test_a_secret_set_both_directly_and_by_file_is_an_error(name: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    with pytest.raises(ConfigurationError, match=f"{name} and {name}_FILE are both set; set only one"):
        load_settings({name: "y", f"{name}_FILE": str(secret)})


def test_a_secret_file_that_cannot_be_read_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigurationError, match=f"DATABASE_URL_FILE: cannot read {missing}"):
        load_settings({"DATABASE_URL_FILE": str(missing)})


def test_an_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\n")
    with pytest.raises(ConfigurationError, match=f"DATABASE_URL_FILE: {secret} is empty"):
        load_settings({"DATABASE_URL_FILE": str(secret)})


def test_migrations_use_the_migration_url_when_given_else_the_database_url() -> None:
    one_role = load_settings({"DATABASE_URL": "postgresql://app@db/casefeedback"})
    assert one_role.migration_url() == "postgresql://app@db/casefeedback"
    split = load_settings({"DATABASE_URL": "postgresql://svc@db/casefeedback",
                           "CASEFEEDBACK_MIGRATION_DATABASE_URL": "postgresql://owner@db/casefeedback"})
    assert split.database_url == "postgresql://svc@db/casefeedback"
    assert split.migration_url() == "postgresql://owner@db/casefeedback"


def test_secrets_stay_out_of_the_settings_repr(tmp_path: Path) -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://a:pw1@db/x", "KAFKA_SASL_PASSWORD": "pw2",
                              "CASEFEEDBACK_MIGRATION_DATABASE_URL": "postgresql://b:pw3@db/x"})
    assert not any(pw in repr(settings) for pw in ("pw1", "pw2", "pw3"))


def _secret_of(settings: Settings, name: str) -> str | None:
    return {"DATABASE_URL": settings.database_url,
            "CASEFEEDBACK_MIGRATION_DATABASE_URL": settings.migration_database_url,
            "KAFKA_SASL_PASSWORD": settings.kafka.sasl_password}[name]
