# The commands of the README. Each creates or reuses .venv and installs the project into it first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Where the public data lives on the team's machines; override with SID_DATA_DIR=/your/data make demo.
# An empty or missing directory makes the demo fall back to the synthetic generator (it says so loudly).
SHARED_DATA := $(abspath ../shared/data)
export SID_DATA_DIR ?= $(if $(wildcard $(SHARED_DATA)/README.md),$(SHARED_DATA),)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export SID_HOME ?= $(CURDIR)/.sid_home

.PHONY: demo ui serve test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -e '.[dev]' > $(VENV)/pip.log 2>&1 || (tail -50 $(VENV)/pip.log; exit 1)
	$(BIN)/python -c "import sid_platform, torch, dagster; assert torch.__version__.startswith('2.13.0')"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sid-platform demo

# The Dagster UI with the demo's data directory and homes (the exports above): its Materialize all, with no
# config, runs what `make demo` runs, and the demo's runs show up in it. UI_PORT=3111 make ui for another port.
UI_PORT ?= 3000
ui: $(STAMP)
	$(BIN)/python -c "from sid_platform.automation.run import local_instance; local_instance()"  # the home as the demo makes it (dagster dev needs it to exist)
	$(BIN)/dagster dev -w workspace.yaml -p $(UI_PORT)

# The HTTP service over the registry's champion (after a run that promoted one); SERVE_PORT=8001 make serve.
SERVE_PORT ?= 8000
serve: $(STAMP)
	$(BIN)/sid-platform serve --port $(SERVE_PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sid_platform sid_platform_tests benchmarks
	$(BIN)/ruff format --check sid_platform sid_platform_tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .sid_home .dagster_home .pytest_cache
