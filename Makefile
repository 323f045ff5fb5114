# Clickboard. `make help` lists the targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := webapp

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate requirements.txt
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(VENV)/.installed ## Create .venv and install the pinned requirements

run: $(VENV)/.installed ## Start web, worker, beat and an embedded Redis on http://127.0.0.1:8000 (PORT=...)
	$(BIN)/python -m webapp.devrun

test: $(VENV)/.installed-dev ## Run the whole test suite (lint included)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-dev ## Run the tests that need no worker or server processes
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev ## Reformat the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev ## Run the benchmarks (needs wrk; adds PostgreSQL + RabbitMQ when found)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean: ## Remove .venv and local data under instance/
	rm -rf $(VENV) instance
