"""Reads procedure files: the built-in ones beside this module and an operator's folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.deadlines.procedures import Procedure, ProcedureBook, ProcedureError, parse_procedure

BUILT_IN = Path(__file__).parent / "procedures"


def load_file(path: Path) -> Procedure:
    """Read and validate one procedure file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ProcedureError(f"procedure file {path.name}: cannot be read as YAML: {exc}") from None
    return parse_procedure(raw, path.name)


def load_book(extra_dir: Path | None = None, default: str = "spso-mchp") -> ProcedureBook:
    """Built-in procedures plus an operator folder's (theirs win on the same id)."""
    files = sorted(BUILT_IN.glob("*.yaml"))
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise ProcedureError(f"procedures folder {extra_dir} does not exist")
        files += sorted([*extra_dir.glob("*.yaml"), *extra_dir.glob("*.yml")])
    book = ProcedureBook([load_file(f) for f in files], default)
    if book.current(default) is None:
        raise ProcedureError(f"default procedure {default!r} is not among {book.ids()}")
    return book
