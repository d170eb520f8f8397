# payproc: two commands do all the set-up.
#   make demo   creates .venv, installs, and runs the whole system end to end
#   make test   creates .venv, installs, lints, type-checks, checks the layers and runs the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test lint bench chaos clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	./scripts/ensure-services.sh
	$(BIN)/payproc demo

# bench/ is type-checked too, against the peers it imports: lint needs the bench extra.
lint: $(BENCH_STAMP)
	$(BIN)/ruff check processor retry dlq_admin schemas bench tests
	$(BIN)/ruff format --check processor retry dlq_admin schemas bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite on SQLite, then the tests that reach a database again on PostgreSQL (a
# fresh database per run; tests/conftest.py deselects the others in that pass).
test: $(STAMP) lint
	./scripts/ensure-services.sh postgres
	./scripts/ensure-chromium.sh
	./scripts/ensure-deploy-tools.sh
	$(BIN)/pytest -q -p no:cacheprovider --durations=15
	PAYPROC_TEST_DB=postgres $(BIN)/pytest -q -p no:cacheprovider --durations=15 \
		--ignore=tests/test_cluster.py --ignore=tests/deploy

clean:
	rm -rf $(VENV) .payproc *.egg-info

# The long soak (10,000 payments, faults, a broker restart); run it alone.
chaos: $(STAMP)
	./scripts/ensure-services.sh
	$(BIN)/python -m tests.chaos.soak

# The benchmark: payproc vs the bare aio-pika ceiling, Celery and Dramatiq (11-12 minutes here);
# prints the table and writes bench/results.md.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	./scripts/ensure-services.sh postgres
	$(BIN)/python -m bench.run --output bench/results.md
