# Lettrine: `make run` to try it, `make test` to check it. `make help` lists the rest.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: help run test lint typecheck format migration translations assets clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || \
	  { echo "Lettrine needs Python 3.11 (found: $$($(PYTHON) --version 2>&1)). Set PYTHON=/path/to/python3.11."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed ## Start Lettrine (web, worker, beat, dev outbox) with the demo bulletin
	$(BIN)/lettrine dev

test: $(VENV)/.installed-dev ## Lint, type-check, and run the tests on PostgreSQL then SQLite
	scripts/test.sh

lint: $(VENV)/.installed-dev ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev ## Reformat the code and apply safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(VENV)/.installed-dev ## mypy --strict on service, emails, workers
	$(BIN)/mypy

migration: $(VENV)/.installed-dev ## New Alembic migration from the models: make migration msg="add x"
	@test -n "$(msg)" || { echo 'usage: make migration msg="what changes"'; exit 1; }
	$(BIN)/lettrine db upgrade
	$(BIN)/alembic revision --autogenerate -m "$(msg)"

translations: $(VENV)/.installed-dev ## Extract UI strings, update and compile the catalogues
	$(BIN)/pybabel extract -F babel.cfg -k _l -o service/translations/messages.pot .
	$(BIN)/pybabel update -i service/translations/messages.pot -d service/translations --no-fuzzy-matching
	$(BIN)/pybabel compile -d service/translations

assets: ## Reinstall front-end packages from npm and copy them to service/static/vendor
	npm ci
	$(BIN)/python scripts/vendor_assets.py

clean: ## Remove the virtualenv and caches (keeps instance/)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
