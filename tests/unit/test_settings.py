"""Settings read from the environment: defaults, and a clear error for a value that cannot be used."""

from __future__ import annotations

import pytest

from services.cli.main import main
from services.common.errors import ConfigurationError
from services.common.settings import load_settings


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
