"""Reads the operator's file of bounded label values (`labels.yaml` beside this module by default)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.common.errors import ConfigurationError
from services.common.figures import LabelValues

DEFAULT_FILE = Path(__file__).parent / "labels.yaml"
KEYS = ("service_areas", "respondent_types", "themes")


def parse_labels(raw: Any, name: str) -> LabelValues:
    """Decoded YAML as label values; errors name the file and the key."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"labels file {name}: must be a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigurationError(f"labels file {name}: unknown key(s) {unknown}; the keys are {', '.join(KEYS)}")
    lists = {key: _values(raw.get(key), key, name) for key in KEYS}
    return LabelValues(**lists)


def _values(value: Any, key: str, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"labels file {name}: {key} must be a non-empty list of names, got {value!r}")
    if "other" in value:
        raise ConfigurationError(f"labels file {name}: {key} must not list 'other' (values outside the list are)")
    return tuple(dict.fromkeys(value))


def load_labels(path: Path | None = None) -> LabelValues:
    """The label values of `path` (the built-in file when None)."""
    chosen = path or DEFAULT_FILE
    try:
        raw = yaml.safe_load(chosen.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"labels file {chosen}: cannot be read as YAML: {exc}") from None
    return parse_labels(raw, str(chosen))
