# Quick start: `make demo` (runs the demo) and `make test` (runs the whole test suite).
# Both create ./.venv on first use and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# An independent OFD reader (easyofd, PyPI) in its own environment: it brings PyMuPDF, numpy and onnxruntime,
# which certstore itself does not need. The OFD tests render our files with it.
INTEROP       := .venv-interop
INTEROP_STAMP := $(INTEROP)/.installed

.PHONY: demo test lint bench clean sysdeps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(INTEROP_STAMP):
	$(PYTHON) -m venv $(INTEROP)
	$(INTEROP)/bin/pip install --quiet easyofd
	touch $(INTEROP_STAMP)

sysdeps:
	scripts/install-system-deps

demo: sysdeps $(STAMP)
	$(BIN)/certstore keys init --if-missing
	$(BIN)/certstore keys list
	$(BIN)/certstore seal verify .certstore/keys/seals/default.esl
	$(BIN)/certstore catalogue list

test: sysdeps $(STAMP) $(INTEROP_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CERTSTORE_EASYOFD_PYTHON=$(CURDIR)/$(INTEROP)/bin/python $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(INTEROP) .pytest_cache .ruff_cache
