# The two set-up commands of the README: `make run` (whole system) and `make test` (every test).
# Both create the virtual environment and install what they need on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test unit integration e2e bench lint system-deps schemas lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's prometheus package gives the real Prometheus and promtool the tests check against.
system-deps:
	@command -v promtool >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; fi; }
	@# the package starts a system Prometheus on :9090; the tests run their own, so stop it
	@-systemctl stop prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || true

run: setup
	$(BIN)/casefeedback up --demo

test: setup system-deps
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

bench: setup
	$(BIN)/python -m tests.benchmarks.run_all

schemas: setup
	$(BIN)/python -m schemas.export

lint: setup
	$(BIN)/python -m pip install --quiet ruff mypy types-PyYAML
	$(BIN)/ruff check services schemas tests
	$(BIN)/mypy

lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache
