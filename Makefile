# Two commands for a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8000
MODEL_DIR ?= models/default
STARTER_DIR ?= artifacts/starter
NABA_DATA_DIR ?= ../shared/data
# Extra flags for the benchmarks, e.g. BENCH_ARGS="--model base --seconds 5".
BENCH_ARGS ?=
# The CPU build of torch; on these machines pip finds it in a local wheel folder.
TORCH_SPEC ?= torch==2.13.0

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint starter bench-serve bench-batch clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

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

test: $(STAMP)
	HF_HUB_OFFLINE=1 NABA_DATA_DIR=$(NABA_DATA_DIR) $(BIN)/python -m pytest

# Benchmarks (bench/): markdown tables with a baseline measured in the same run. Minutes, not seconds.
BENCH_ENV := HF_HUB_OFFLINE=1 NABA_DATA_DIR=$(NABA_DATA_DIR) NABA_MODEL_DIR=$(MODEL_DIR)

bench-serve: $(STAMP)
	$(BENCH_ENV) $(BIN)/python bench/serve.py $(BENCH_ARGS)

bench-batch: $(STAMP)
	$(BENCH_ENV) $(BIN)/python bench/batch.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) artifacts .pytest_cache
