# Every CI step is a target here, so a laptop runs exactly what CI runs. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ENV ?= dev
export MLFLOW_DISABLE_TELEMETRY := true

.DEFAULT_GOAL := help
.PHONY: help install train test lint lock bench

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $@

install: $(BIN)/.installed ## create .venv and install the project with the exact pins of requirements.lock

train: install ## train, evaluate and register a model in ENV (default dev): make train ENV=staging
	$(BIN)/ml-project train --env $(ENV)

test: install ## lint, then the whole test suite (unit, data, model, integration)
	$(BIN)/ruff check ml_project tests benchmarks .ci
	$(BIN)/python -m pytest

lint: install ## ruff only
	$(BIN)/ruff check ml_project tests benchmarks .ci

lock: ## re-resolve requirements.lock in a fresh venv from pyproject.toml, and regenerate conda.yaml
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e ".[dev]"
	( echo "# Exact versions for reproduction: pip install -c requirements.lock -e '.[dev]'"; \
	  echo "# Regenerate with: make lock. Resolved for Python 3.11 on linux x86_64."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^ml-project' ) > requirements.lock
	rm -rf .lock-venv
	$(PYTHON) .ci/conda_env.py

bench: install ## run the benchmarks (several minutes): results in benchmarks/results/<date>.json and .md
	$(BIN)/python benchmarks/run.py
