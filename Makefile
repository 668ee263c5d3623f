# Everyday commands. They all go through intake.py, which creates the virtualenv and installs
# requirements.txt first when needed, so `make test` works on a fresh checkout.
PYTHON ?= python3
VENV := $(or $(INTAKE_VENV),.venv)
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# make test-pg: a local PostgreSQL and Redis, as in CI (the suite flushes that Redis database).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/intake
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: start test test-pg lint format ci

start:  ## run Intake until Ctrl-C (embedded SQLite + valkey unless DATABASE_URL/REDIS_URL are set)
	$(PYTHON) intake.py start --host $(HOST) --port $(PORT) --workers $(WORKERS)

test:  ## the whole suite on the embedded default (extra pytest args: make test ARGS="-x -k feed")
	env -u DATABASE_URL -u REDIS_URL $(PYTHON) intake.py test $(ARGS)

test-pg:  ## the whole suite on PostgreSQL + Redis
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PYTHON) intake.py test $(ARGS)

lint: $(VENV)/bin/ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy runs ingestion project api

format: $(VENV)/bin/ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

ci:  ## what CI runs (installs chromium, starts PostgreSQL and Redis if needed)
	.ci/run

# ruff comes from requirements.txt: let intake.py make the venv (`pytest --version` is the
# cheapest command that goes through its bootstrap).
$(VENV)/bin/ruff: requirements.txt
	$(PYTHON) intake.py test --version
	touch $@
