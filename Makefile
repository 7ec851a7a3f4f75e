# Two commands do everything on a fresh machine: `make train` and `make test`.
# Both create .venv and install the project with the pinned versions in
# requirements/constraints.txt the first time (and again when either file changes):
# `make train` the runtime dependencies only, `make test` the dev tools as well.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed
DEV := $(VENV)/.installed-dev
ARGS ?=

.PHONY: install install-dev train test lint format bench clean

install: $(RUNTIME)
install-dev: $(DEV)

$(RUNTIME): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e .
	touch $@

$(DEV): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $@

train: $(RUNTIME)
	$(BIN)/linreg fit $(ARGS)

test: lint
	$(BIN)/python -m pytest $(ARGS)

lint: $(DEV)
	$(BIN)/ruff check linreg scripts tests
	$(BIN)/ruff format --check linreg scripts tests
	$(BIN)/mypy

format: $(DEV)
	$(BIN)/ruff format linreg scripts tests
	$(BIN)/ruff check --fix linreg scripts tests

bench: $(RUNTIME)
	$(BIN)/python scripts/benchmark.py $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
