# Quick start: `make demo` (runs the demo) and `make test` (runs the whole test suite).
# Both create ./.venv on first use and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The demo issues a 建筑工程施工许可证 (construction permit).
DEMO_TYPE     := 11410100990000025A001
# An independent OFD reader (easyofd, PyPI) in its own environment: it brings PyMuPDF, numpy and onnxruntime,
# which certstore itself does not need. The OFD tests render our files with it.
INTEROP       := .venv-interop
INTEROP_STAMP := $(INTEROP)/.installed
# axe-core (npm), the accessibility rules the page tests run in Chromium (tests/pages/test_accessibility.py)
NPM_TOOLS     := .npm-tools
AXE_VERSION   := 4.14.1
AXE_STAMP     := $(NPM_TOOLS)/.axe-$(AXE_VERSION)
# `make test` runs the suite in parallel (pytest-xdist): a worker per CPU, at most 4 — each starts its own
# PostgreSQL, SeaweedFS and Chromium. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS  ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: demo test lint bench clean sysdeps sysdeps-test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(INTEROP_STAMP):
	$(PYTHON) -m venv $(INTEROP)
	$(INTEROP)/bin/pip install --quiet easyofd
	touch $(INTEROP_STAMP)

$(AXE_STAMP):
	npm install --prefix $(NPM_TOOLS) --no-audit --no-fund --save-exact axe-core@$(AXE_VERSION)
	touch $(AXE_STAMP)

# the Debian packages certstore needs to run (sysdeps) and, for the tests and benchmarks, more (sysdeps-test)
sysdeps:
	scripts/install-system-deps

sysdeps-test:
	scripts/install-system-deps --test

demo: sysdeps $(STAMP)
	$(BIN)/certstore keys init --if-missing --public-url http://127.0.0.1:8000
	$(BIN)/certstore keys list
	$(BIN)/certstore seal verify .certstore/keys/seals/11410100990000025A.esl
	$(BIN)/certstore catalogue list
	@# written once: a later run (any day) issues the same data again, which the repository recognises
	test -s .certstore/example.json || $(BIN)/certstore catalogue example $(DEMO_TYPE) > .certstore/example.json
	$(BIN)/certstore issue --catalogue $(DEMO_TYPE) --data .certstore/example.json --out .certstore/example.ofd
	$(BIN)/certstore issue --catalogue $(DEMO_TYPE) --data .certstore/example.json --out .certstore/example.pdf
	$(BIN)/certstore verify .certstore/example.ofd
	@echo "demo files: .certstore/example.ofd, .certstore/example.pdf"
	@echo "API on http://127.0.0.1:8000 (OpenAPI: /docs); a token per role in .certstore/demo-tokens.json"
	@echo "pages on http://127.0.0.1:8000/ (verify: /verify); logins per role in .certstore/demo-logins.json"
	$(BIN)/certstore serve --demo --host 127.0.0.1 --port 8000

test: sysdeps-test $(STAMP) $(INTEROP_STAMP) $(AXE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CERTSTORE_EASYOFD_PYTHON=$(CURDIR)/$(INTEROP)/bin/python $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(INTEROP) $(NPM_TOOLS) .pytest_cache .ruff_cache
