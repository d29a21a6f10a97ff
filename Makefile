# Two commands for a fresh machine: `make dev` (local AWS + live pipeline + Dagster UI) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
TOOLS := .venv-tools
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS_STAMP := $(TOOLS)/.installed
CHECKOV_VERSION := 3.3.30
PIP_FLAGS := --disable-pip-version-check --quiet
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: dev test lint iac-scan install tools bench lock clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade "pip>=24"
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e ".[dev]"
	@touch $@

install: $(STAMP)

# checkov pins libraries that clash with ours (boto3, pydantic ...): it gets its own environment.
$(TOOLS_STAMP):
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install $(PIP_FLAGS) --upgrade "pip>=24"
	$(TOOLS)/bin/python -m pip install $(PIP_FLAGS) "checkov==$(CHECKOV_VERSION)"
	@touch $@

tools: $(TOOLS_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/cfn-lint infra/template.yaml

iac-scan: $(TOOLS_STAMP)
	$(TOOLS)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f infra/template.yaml

test: $(STAMP) lint iac-scan
	$(BIN)/python -m pytest

dev: $(STAMP)
	$(BIN)/gadget-pipeline dev

bench: $(STAMP)
	$(BIN)/python bench/bench_transform.py
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_current_state.py
	$(BIN)/python bench/bench_sensor.py

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed '1i # Resolved, tested dependency tree (Python 3.11). Regenerate with `make lock` after changing pins in pyproject.toml.' > constraints.txt

clean:
	rm -rf $(VENV) $(TOOLS) .gadget .dagster_home
