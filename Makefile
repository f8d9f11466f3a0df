# The two commands of the Quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   := .custodes/demo

.PHONY: install run test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installs custodes with every extra plus the dev tools (lint, types, tests).
install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[all,dev]'

# The main job on the bundled demo: a stand-in for a leaked codebase indexed, then a demo
# repository scanned with the enterprise pack (a key in the code, TLS verification off, a
# fragment pasted from the leak, a release tarball whose source map carries the original sources
# and a key), the scorecard shown, the verdict and the demo decisions recorded in a fresh ledger,
# the signed checkpoint printed and the whole ledger verified.
run: install
	@rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/custodes demo --dir $(DEMO)

lint: install
	$(BIN)/ruff check src tests benchmarks

typecheck: install
	$(BIN)/mypy

# Lint, types, then the whole suite; the tests start their own PostgreSQL cluster.
test: install lint typecheck
	$(BIN)/pytest

# The benchmarks beside their peers (pymerkle; gitleaks, kingfisher, detect-secrets): see
# benchmarks/BENCHMARKS.md. The secrets run installs its peers into benchmarks/.work/.
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/ledger_bench.py
	$(BIN)/python benchmarks/secrets_bench.py
	$(BIN)/python benchmarks/provenance_bench.py --scale
	$(BIN)/python benchmarks/guard_bench.py

clean:
	rm -rf $(VENV) .custodes .pytest_cache .mypy_cache .ruff_cache .hypothesis
