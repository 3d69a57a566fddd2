# One entry point for set-up, the main job and the checks. Every target creates the virtual
# environment on first use, so a fresh clone needs nothing but Python 3.11 and these commands.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup demo test test-fast lint check clean bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

## The main job on the embedded defaults (shipped data, local SQLite MLflow, local Ray).
demo: $(STAMP)
	$(BIN)/nascreen demo

## The test suite (what CI runs).
test: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -q

## The fast loop while working (< 1 minute on a quiet machine): no Ray, no MLflow store, no training, no
## server. Tests that need one carry the ray / mlflow / server / slow marker (tests/conftest.py marks every
## test using a training fixture).
test-fast: $(STAMP)
	RAY_USAGE_STATS_ENABLED=0 $(BIN)/python -m pytest -q -m "not slow and not ray and not mlflow and not server and not browser and not fuzz"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

bench: $(STAMP)
	$(BIN)/python benchmarks/featurize.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
