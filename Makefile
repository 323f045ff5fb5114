# Clickboard. `make help` lists the targets.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := webapp
# pytest-xdist workers for `make test` / `make suite`: one more than the cores, as the
# process tests spend much of their time waiting (2 cores: 3 workers beat 2 and 4).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

.DEFAULT_GOAL := help
.PHONY: help install run test suite test-fast lint format bench clean

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

test: lint suite ## Lint, then the whole test suite on every core (PYTEST_ARGS=..., TEST_WORKERS=N)

suite: $(VENV)/.installed-dev ## The whole test suite without lint (.ci/run's PostgreSQL pass)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

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
