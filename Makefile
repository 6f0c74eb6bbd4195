# Tessera: `make run [PORT=8000]` starts the identity service, `make test` runs every check.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8000

.PHONY: run demo test check lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tessera serve --host 127.0.0.1 --port $(PORT)

demo: $(STAMP)
	$(BIN)/tessera demo

check: $(STAMP)
	$(BIN)/ruff check src tests bench examples deploy tools
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/token_endpoint.py

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
