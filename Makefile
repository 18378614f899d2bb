# Quick start: `make demo` (runs the demo) and `make test` (runs the whole test suite).
# Both create ./.venv on first use and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean sysdeps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

sysdeps:
	scripts/install-system-deps

demo: sysdeps $(STAMP)
	$(BIN)/certstore keys init --if-missing
	$(BIN)/certstore keys list
	$(BIN)/certstore seal verify .certstore/keys/seals/default.esl
	$(BIN)/certstore catalogue list

test: sysdeps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
