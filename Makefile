# Quick start: `make demo` (install into .venv, run the demo), `make test` (install,
# lint, type-check, run every test). Works offline but for the package registries.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: an open range would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[datasets,sklearn,torch,deploy,secagg,ckks,privacy,report,trees,dashboard,postgres,ray,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/accord demo

lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: install
	$(BIN)/mypy

# Starts a throwaway PostgreSQL on loopback when PostgreSQL is installed, so the store
# tests also run against a real server (CI installs it: see .ci/run).
unit: install
	bash scripts/with-postgres.sh $(BIN)/pytest

test: lint typecheck unit

bench: install
	bash bench/setup-flower.sh
	$(BIN)/python bench/w1_digits.py --peer
	$(BIN)/python bench/w2_overhead.py --peer
	$(BIN)/python bench/w3_bigmodel.py --peer
	$(BIN)/python bench/w6_aggregation.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache accord-runs
