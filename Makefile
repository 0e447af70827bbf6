# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= synthetic
PROFILE ?= quick

.PHONY: install demo up down status test lint format benchmark stack-test ui-test

install: $(STAMP)

# Reinstall when the project's dependencies change; pip takes torch from local wheels here.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: install
	scripts/stack.sh up

down:
	scripts/stack.sh down

status:
	@scripts/stack.sh status

demo: up
	eval "$$(scripts/stack.sh env)" && \
	  $(BIN)/prefect deployment run glasses/full --param data=$(DATA) --param profile=$(PROFILE) --watch && \
	  $(BIN)/glasses summary
	@eval "$$(scripts/stack.sh env)" && echo "MLflow UI:  $$MLFLOW_TRACKING_URI" && \
	  echo "Prefect UI: $${PREFECT_API_URL%/api}"

# Two pytest workers (pytest-xdist), a file each at a time: most of the long tests wait on servers
# and child processes, so two overlap on two cores. Files go out in the order tests/conftest.py
# sorts them (longest first), not xdist's (most tests first). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: install
	@start=$$(date +%s); status=0; \
	  $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
	    --durations=25 || status=$$?; \
	  echo "make test: $$(( $$(date +%s) - start )) s of wall time"; exit $$status

# The MLflow and Prefect UIs in Chromium after a tiny run on a stack of its own (minutes, not in
# `test`; needs `apt-get install -y chromium` and the `ui` extra). Screenshots in .ui-test/.
ui-test: install
	$(BIN)/python -m pip install --quiet -e '.[ui]'
	GLASSES_UI_TEST=1 $(BIN)/python -m pytest -q -rs tests/e2e/test_ui.py

# The stack in containers, built and run for real (docker/stack_test.sh; minutes, not in `test`).
stack-test: install
	docker/stack_test.sh

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# Training cost per image against the GEMM floor and the seed's loop, then the flow cold, warm and
# resumed (minutes: two full `quick` runs). BENCH_ARGS passes more options, e.g. BENCH_ARGS=--skip-flow.
BENCH_ARGS ?=
benchmark: install
	$(BIN)/python -m benchmarks.run --flow-profile $(PROFILE) --data $(DATA) $(BENCH_ARGS)
