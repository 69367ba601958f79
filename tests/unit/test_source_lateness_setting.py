"""CASEFEEDBACK_SOURCE_LATENESS: how late each inbound source's records can arrive (contract 11.2), read once
into the settings, with a one-line error for a declaration that cannot be used."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.cli.main import main
from services.common.errors import ConfigurationError
from services.common.settings import load_settings


def test_no_source_is_late_unless_declared() -> None:
    assert load_settings({}).source_lateness == {}


def test_each_source_gets_its_declared_lateness() -> None:
    settings = load_settings({"CASEFEEDBACK_SOURCE_LATENESS": "crm/east=26h, crm/west=2h,forms=90m,batch=1.5d"})
    assert settings.source_lateness == {"crm/east": timedelta(hours=26), "crm/west": timedelta(hours=2),
                                        "forms": timedelta(minutes=90), "batch": timedelta(hours=36)}


@pytest.mark.parametrize(("value", "message"), [
    ("crm/east=26", "'crm/east=26' must be source=<number><s|m|h|d>, e.g. crm/east=26h"),
    ("crm/east", "'crm/east' must be source=<number><s|m|h|d>"),
    ("crm/east=-2h", "'crm/east=-2h' must be source=<number><s|m|h|d>"),
    ("crm/east=2h,crm/east=3h", "source 'crm/east' is declared twice"),
])
def test_a_declaration_that_cannot_be_used_is_one_clear_line(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"CASEFEEDBACK_SOURCE_LATENESS: {message}".replace("|", r"\|")):
        load_settings({"CASEFEEDBACK_SOURCE_LATENESS": value})


def test_a_bad_declaration_stops_a_worker_with_exit_code_2(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CASEFEEDBACK_SOURCE_LATENESS", "crm/east=soon")
    assert main(["run", "escalation"]) == 2
    err = capsys.readouterr().err
    assert "CASEFEEDBACK_SOURCE_LATENESS: 'crm/east=soon' must be source=" in err and len(err.strip().splitlines()) == 1
