# One entry point for people and CI. Every target makes its own virtual environment,
# so a fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
HASH   := $(shell cksum pyproject.toml | cut -d' ' -f1)
STAMP  := $(VENV)/.installed-test-$(HASH)
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
OUT    ?= out
.DEFAULT_GOAL := run

.PHONY: run demo test test-fast lint typecheck bench clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Tests need everything (extras data, aws and the test tools); `make run` only the core.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-test-*
	touch $@ $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[data,server,aws]'
	rm -f $(VENV)/.installed-run-*
	touch $@

venv: $(STAMP)

## The main job on embedded defaults (no server needed): a backtest + sweep of a built-in
## strategy on the bundled sample data (metrics table, out/report.html), then the whole
## local platform (API, webhook, signal evaluator, backtests, paper engine) on :8000.
run: $(RUN_STAMP)
	$(BIN)/algotrendy demo --out $(OUT)
	$(BIN)/algotrendy serve --data-dir .algotrendy

## Only the research demo (backtest, sweep, HTML report), without starting the platform.
demo: $(RUN_STAMP)
	$(BIN)/algotrendy demo --out $(OUT)

## Lint, type check, offline template checks and every test (slow suites included).
test: $(STAMP) lint typecheck template-check
	$(BIN)/python -m pytest -n 2 -m "slow or not slow"

## Quick loop for developers: no slow suites.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check shared functions tests bench scripts
	$(BIN)/ruff format --check shared functions tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache .aws-sam .venv-sam .tools .algotrendy

# Offline checks of template.yaml and statemachines/ (sam validate, cfn-lint, asl-validator, sam build).
-include Makefile.template-checks.mk
