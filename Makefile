# The two README commands: `make run` (the main job) and `make test` (the whole test suite).
# Everything else is a step of those. Services: kafka, db, redis, prometheus (e.g. `make down S=db`).
PY := .venv/bin/python
S ?=
PYTEST_ARGS ?=
ARGS ?=

.PHONY: setup up down status test run lint

setup:  ## install Debian packages, .venv, Kafka jars and npm packages (idempotent)
	@bash infra/local/bootstrap.sh

up: setup  ## start the local stack (Kafka, TimescaleDB, Redis, Prometheus) and wait until it answers
	@$(PY) -m infra.local up $(S)

down:  ## stop the local stack (data is kept under .local/)
	@$(PY) -m infra.local down $(S)

status:  ## one line per service; exit status 0 only if all are healthy
	@$(PY) -m infra.local status $(S)

test: up  ## unit + integration tests against the local stack
	$(PY) -m pytest $(PYTEST_ARGS)

run: up  ## the main job (ARGS="--cameras 100", ARGS="--source video.mp4", see python -m infra.main_job --help)
	@bash infra/run_main.sh $(ARGS)

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
