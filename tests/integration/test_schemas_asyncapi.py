"""The AsyncAPI document, checked by the official AsyncAPI parser (the npm package @asyncapi/parser, run with Node).

The parser is installed with npm into a cache directory (`CASEFEEDBACK_NPM_CACHE`, default
~/.cache/casefeedback/npm) the first time; Node and npm must be on the PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from schemas.export import ASYNCAPI_PATH, asyncapi_document, asyncapi_rendered

PARSER = "@asyncapi/parser@3.6.6"
SCRIPT = Path(__file__).parents[1] / "tools" / "asyncapi_validate.js"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """A node_modules folder holding the AsyncAPI parser (installed with npm when missing)."""
    for tool in ("node", "npm"):
        assert shutil.which(tool), f"{tool} is not on the PATH: install Node.js 20 and npm (Debian: nodejs npm)"
    cache = Path(os.environ.get("CASEFEEDBACK_NPM_CACHE", Path.home() / ".cache" / "casefeedback" / "npm"))
    prefix = cache / PARSER.replace("/", "_").replace("@", "")
    modules = prefix / "node_modules"
    if not (modules / "@asyncapi" / "parser" / "package.json").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PARSER],
                       check=True, capture_output=True, timeout=540)
    return modules


def validate(path: Path, modules: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", str(SCRIPT), str(path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NODE_PATH": str(modules)})


def test_the_checked_in_document_is_the_one_the_models_give() -> None:
    assert ASYNCAPI_PATH.read_text() == asyncapi_rendered(), "stale: run python -m schemas.export"


def test_the_official_parser_accepts_the_document(node_modules: Path) -> None:
    result = validate(ASYNCAPI_PATH, node_modules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_official_parser_refuses_a_broken_document(node_modules: Path, tmp_path: Path) -> None:
    document = asyncapi_document()
    channel = next(iter(document["channels"].values()))
    channel["messages"]["nowhere"] = {"$ref": "#/components/messages/does-not-exist"}
    document["operations"]["receive.feedback.complaints"]["action"] = "publish"  # AsyncAPI 2's word, not 3's
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(document, sort_keys=False))
    result = validate(broken, node_modules)
    assert result.returncode == 1, result.stdout
    assert '"severity":0' in result.stdout


def test_every_topic_and_type_is_in_the_document() -> None:
    from schemas.registry import ALL_TOPICS, ALL_TYPES, INBOUND_TYPES

    document = asyncapi_document()
    assert {c["address"] for c in document["channels"].values()} == set(ALL_TOPICS)
    messages = document["components"]["messages"]
    assert set(ALL_TYPES) <= set(messages) and {f"{t}.binary" for t in INBOUND_TYPES} <= set(messages)
    assert "DeadLetter" in document["components"]["schemas"]
