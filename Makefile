# The two commands: `make demo` (install + run the main job) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export OPENBLAS_NUM_THREADS ?= 1
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# the slowest tests listed at the end of every run: the suite's 20-minute budget is watched
PYTEST_ARGS ?= --durations=25

.PHONY: demo test lint format serve benchmark clean pg-start pg-stop mutation

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(BIN)/.dev-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/matchwise demo

test: $(BIN)/.dev-installed lint
	@url="$$(bash scripts/pg-test-server.sh start)" && \
	  redis="$$(bash scripts/redis-test-server.sh start)" && \
	  MATCHWISE_TEST_DATABASE_URL="$$url" MATCHWISE_TEST_REDIS_URL="$$redis" \
	  $(BIN)/pytest $(PYTEST_ARGS)

lint: $(BIN)/.dev-installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src/matchwise
	$(BIN)/lint-imports

format: $(BIN)/.dev-installed
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

serve: $(BIN)/.installed
	$(BIN)/matchwise serve

benchmark: $(BIN)/.dev-installed
	$(BIN)/matchwise benchmark movielens ../shared/data/movielens-100k

# Mutation testing of the maths (slow; not part of `make test`): TESTING.md
mutation: $(BIN)/.dev-installed
	bash scripts/mutation.sh

pg-start:
	@bash scripts/pg-test-server.sh start

pg-stop:
	@bash scripts/pg-test-server.sh stop

clean:
	rm -rf var .pytest_cache .ruff_cache .mypy_cache
