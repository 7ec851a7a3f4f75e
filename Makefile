# Two commands do everything on a fresh machine: `make train` and `make test`.
# Both create .venv and install the project with the pinned versions in
# requirements/constraints.txt the first time (and again when either file changes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install train test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/linreg fit $(ARGS)

test: lint
	$(BIN)/python -m pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check linreg scripts tests
	$(BIN)/ruff format --check linreg scripts tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format linreg scripts tests
	$(BIN)/ruff check --fix linreg scripts tests

bench: $(STAMP)
	$(BIN)/python scripts/benchmark.py $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
