# Two commands for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
MODEL_DIR ?= models/default
STARTER_DIR ?= artifacts/starter
NABA_DATA_DIR ?= ../shared/data
# Extra flags for the benchmarks, e.g. BENCH_ARGS="--model base --seconds 5".
BENCH_ARGS ?=
# The CPU build of torch, pinned in the lock files; on these machines pip finds it in a local wheel folder,
# elsewhere add PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
TORCH_SPEC ?= torch==2.13.0
# Every dependency pinned: the runtime set (the wheel's, used by `make test-wheel` and the Dockerfile) and the
# runtime set with the dev extras (what `make install` installs). `make lock` regenerates both.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lock serve test test-wheel lint starter bench-serve bench-batch clean

$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r $(DEV_LOCK)
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --upgrade-package "$(TORCH_SPEC)"

lock:
	$(COMPILE) -o $(LOCK) pyproject.toml
	$(COMPILE) --extra dev -o $(DEV_LOCK) pyproject.toml

# A model built here from random weights, for machines that want one trained on their own data (see README).
$(STARTER_DIR)/naba_config.json: | $(STAMP)
	NABA_DATA_DIR=$(NABA_DATA_DIR) $(BIN)/naba build-starter --output $(STARTER_DIR)

starter: $(STARTER_DIR)/naba_config.json

# The int8 ONNX encoder that the service's default backend (`auto`) runs on CPU, built next to the model once
# (seconds for the shipped model) and again whenever its weights change. Without it the service runs torch.
$(MODEL_DIR)/onnx/encoder.int8.onnx: $(MODEL_DIR)/model.safetensors | $(STAMP)
	$(BIN)/naba export --model $(MODEL_DIR) --quantize int8

# Serves the model shipped in models/default at once; MODEL_DIR=path serves another artifact.
serve: $(STAMP) $(MODEL_DIR)/onnx/encoder.int8.onnx
	NABA_MODEL_DIR=$(MODEL_DIR) $(BIN)/naba serve --host 0.0.0.0 --port $(PORT)

# Debian packages some tests use: Chromium for the page's browser tests (Playwright's own browser download
# cannot work offline) and a PostgreSQL server for the corrections store. Without root or apt the install is
# skipped with a note, and those tests skip.
CHROMIUM := /usr/bin/chromium
POSTGRESQL := /usr/lib/postgresql

$(CHROMIUM) $(POSTGRESQL):
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql) \
		|| echo "chromium or postgresql not installed: the tests that need them will skip"

test: $(STAMP) | $(CHROMIUM) $(POSTGRESQL)
	HF_HUB_OFFLINE=1 NABA_DATA_DIR=$(NABA_DATA_DIR) $(BIN)/python -m pytest

# The built wheel in a clean venv outside the tree serves and predicts (tests/test_wheel.py; a minute or two).
test-wheel: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m slow tests/test_wheel.py

# Benchmarks (bench/): markdown tables with a baseline measured in the same run. Minutes, not seconds.
BENCH_ENV := HF_HUB_OFFLINE=1 NABA_DATA_DIR=$(NABA_DATA_DIR) NABA_MODEL_DIR=$(MODEL_DIR)

bench-serve: $(STAMP)
	$(BENCH_ENV) $(BIN)/python bench/serve.py $(BENCH_ARGS)

bench-batch: $(STAMP)
	$(BENCH_ENV) $(BIN)/python bench/batch.py $(BENCH_ARGS)

# Static checks. import-linter (the layers of docs/architecture.md) and mypy walk folders, so they read the
# installed layout, built of links into this tree by tests/package_tree.py.
TREE := build/package-tree

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tests.package_tree $(TREE)
	cd $(TREE) && $(abspath $(BIN))/lint-imports --no-cache $(abspath pyproject.toml)
	cd $(TREE) && $(abspath $(BIN))/mypy naba --config-file $(abspath pyproject.toml)

clean:
	rm -rf $(VENV) artifacts build .pytest_cache
