# One entry point for people and CI. Every target makes its own virtual environment,
# so a fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
OUT    ?= out

.PHONY: run test test-fast test-all lint typecheck bench clean venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

## The main job on embedded defaults: backtest + sweep of a built-in strategy on bundled sample data.
run: $(STAMP)
	$(BIN)/algotrendy demo --out $(OUT)

## Lint, type check and every test (slow suites included).
test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest -n 2 -m "slow or not slow"

## Quick loop for developers: no slow suites.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check shared functions tests bench
	$(BIN)/ruff format --check shared functions tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache .aws-sam
