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
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,embedded]'
	touch $(STAMP)

setup: $(STAMP)

# Debian's packages the tests run for real: prometheus (and promtool), prometheus-alertmanager, Node
# with npm for published npm tools, and chromium (headless) to render the HTML reports. Each is installed only when its command is missing.
APT_NEEDED = $(strip $(if $(shell command -v promtool),,prometheus) \
	$(if $(shell command -v prometheus-alertmanager || command -v alertmanager),,prometheus-alertmanager) \
	$(if $(shell command -v npm),,nodejs npm) \
	$(if $(shell command -v chromium),,chromium))
system-deps:
	@if [ -n "$(APT_NEEDED)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_NEEDED) >/dev/null; \
	fi
	@# the packages start system services on :9090 and :9093; the tests run their own, so stop them
	@-systemctl stop prometheus prometheus-alertmanager >/dev/null 2>&1 || { service prometheus stop; service prometheus-alertmanager stop; } >/dev/null 2>&1 || true

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
