# Two commands do all set-up: `make run` (the whole stack) and `make test` (the suite).
# Both create .venv and install the project when pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTACK := $(BIN)/python -m devstack exec --
export PATH := $(BIN):$(PATH)

.PHONY: faults faults-chaos faults-redis-restart faults-broker-down faults-postgres-restart faults-poison \
	faults-broker-node faults-redis-failover
.PHONY: messages
.PHONY: ps smoke install run test lint typecheck reconcile mutation clean-local _stack bench bench-fairness \
	bench-isolation bench-pipeline bench-latency bench-api bench-live bench-growth bench-search bench-dashboard \
	bench-pools

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

## Run web, workers, beat and Flower on the embedded PostgreSQL + Redis (or DATABASE_URL / REDIS_URL).
run: $(STAMP)
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(DEVSTACK) $(MAKE) --no-print-directory _stack

_stack:
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py setup_periodic_tasks -v0
	$(BIN)/python manage.py setup_alert_rules -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py stack_banner
	exec $(BIN)/python -m devstack.supervise

## What the running stack's processes are doing (supervisord's view).
ps: $(STAMP)
	$(BIN)/supervisorctl -c .local/supervisor/supervisord.conf status

## Smoke test of `make run` (what .ci/run checks): endpoints, Flower, a booking through every
## handler, kill -9 of a worker survived, Ctrl-C leaves nothing behind, a second run keeps the data.
smoke: $(STAMP)
	$(BIN)/python .ci/smoke_stack.py

## The full test suite (real PostgreSQL, Redis and Celery workers), after the static checks:
## lint, format, the import contracts (one-way architecture) and the type check.
test: $(STAMP)
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/lint-imports --no-logo
	$(MAKE) --no-print-directory typecheck
	$(DEVSTACK) $(BIN)/python -m pytest $(PYTEST_ARGS)

## The guest pages' German catalogue: extract the pages' strings, then compile (needs gettext;
## both files are committed). Translate the new msgids in guestportal/locale/de/.../django.po.
messages: $(STAMP)
	cd guestportal && $(DEVSTACK) $(BIN)/python ../manage.py makemessages -l de --no-obsolete
	cd guestportal && $(DEVSTACK) $(BIN)/python ../manage.py compilemessages -l de

## Benchmarks print a table and write bench/results/*.json (see bench/RESULTS.md).
bench-fairness: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/fairness.py

## A noisy neighbour: tenant B's latencies alone and under tenant A's flood (target ratio <= 2).
bench-isolation: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/noisy_neighbour.py $(BENCH_ISOLATION_ARGS)

## Pipeline throughput vs bare Celery (target ratio >= 0.6).
bench-pipeline: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/pipeline.py

## Commit-to-handler-start latency, idle system, beside bare Celery (target p99 < 20 ms).
bench-latency: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/latency.py

## API throughput under gunicorn + wrk vs a trivial DRF endpoint (target ratio >= 0.4; needs wrk).
bench-api: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/api.py

## Live pages: booking latency (p95) with 200 pages open vs none, 20 bookings/s (target <= 1.5x).
bench-live: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/live_pages.py $(BENCH_LIVE_ARGS)

## Periodic jobs and availability at 10k and 100k bookings (BENCH_GROWTH_ARGS="--sizes 10000,100000,1000000").
bench-growth: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/growth.py $(BENCH_GROWTH_ARGS)

## Booking-engine search of 200 priced properties vs one availability call (target ratio <= 2).
bench-search: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/search.py $(BENCH_SEARCH_ARGS)

## The dashboard and the calendar of all homes, 10 vs 200 homes, 100k bookings (target ratio <= 2).
bench-dashboard: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/dashboard.py $(BENCH_DASHBOARD_ARGS)

bench-pools: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/pools.py $(BENCH_POOLS_ARGS)

bench: bench-fairness bench-isolation bench-pipeline bench-latency bench-api bench-live bench-growth bench-search \
	bench-dashboard bench-pools

## Fault injection at scale (bench/faults.py): lost / duplicated / failed counts per run.
## On RabbitMQ: FAULTS_BROKER=amqp://guest:guest@127.0.0.1:5672/pms_faults make faults-chaos
FAULT_RUNS := chaos redis-restart broker-down postgres-restart poison broker-node redis-failover
faults: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/faults.py all $(FAULTS_ARGS)

$(addprefix faults-,$(FAULT_RUNS)): faults-%: $(STAMP)
	$(DEVSTACK) $(BIN)/python bench/faults.py $* $(FAULTS_ARGS)

## Mutation testing of the pipeline core (README "Mutation testing"): mutmut, one child at a
## time, ~25 min; prints the mutants that survived and the score per module. A fresh run each
## time; MUTANTS="pms.pipeline.relay*" re-tests only those, on the last run's mutants/.
## Its own test database, kept between mutants (--reuse-db), so `make test` can run beside it.
mutation: $(STAMP)
	$(if $(MUTANTS),,rm -rf mutants)
	TEST_DATABASE_NAME=test_pms_mutation $(DEVSTACK) $(BIN)/python bench/mutation_fresh_db.py
	TEST_DATABASE_NAME=test_pms_mutation $(DEVSTACK) $(BIN)/mutmut run --max-children 1 $(MUTANTS)
	$(BIN)/python bench/mutation_report.py $(MUTATION_REPORT_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## mypy loads the settings (django-stubs) but connects to nothing: any URLs will do.
typecheck: $(STAMP)
	DJANGO_DEBUG=true DATABASE_URL=postgres://mypy@127.0.0.1:1/none \
		REDIS_URL=redis://127.0.0.1:1/0 $(BIN)/mypy .

reconcile: $(STAMP)
	$(DEVSTACK) $(BIN)/python manage.py reconcile

## Stop and delete the embedded servers' data under .local/.
clean-local:
	-$(BIN)/python -m devstack down
	rm -rf .local
