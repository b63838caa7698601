# The quick start: `make run` serves the API on the embedded PostgreSQL; `make test` runs the
# checks and the whole test suite. Each sets up .venv from the hashed locks first (and again
# only when a lock or pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format lock clean

run: $(VENV)/.runtime
	$(BIN)/itemsapi serve

test: $(VENV)/.dev
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests

format: $(VENV)/.dev
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# Recompile the locks after editing requirements*.in (PyPI only, whatever pip.conf says).
lock: $(VENV)/.dev
	PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile -q --generate-hashes --strip-extras \
		--allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile -q --generate-hashes --strip-extras \
		--allow-unsafe --no-emit-index-url --no-emit-find-links -o requirements-dev.txt \
		requirements-dev.in

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.runtime

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
