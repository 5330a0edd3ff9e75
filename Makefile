# Set-up and everyday commands.  Each target creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: lab demo test lint docs docs-serve bench bench-peers clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,tui,docs]"
	@touch $(STAMP)

# As root (containers), JupyterLab refuses to start without --allow-root.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(STAMP)
	$(BIN)/jupyter lab $(LAB_ARGS) notebooks/

demo: $(STAMP)
	$(BIN)/python -m airt_nb.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy airt_nb

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The documentation site (docs/about.md says how it is made). Strict: a broken link, a missing
# reference entry or a docstring warning fails it; the tests build it too (tests/test_docs.py).
# The notice about Material's end of life is answered in docs/about.md.
DOCS_ENV := NO_MKDOCS_2_WARNING=1

docs: $(STAMP)
	$(DOCS_ENV) $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	$(DOCS_ENV) $(BIN)/mkdocs serve

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/compare.py

bench-peers: $(STAMP)
	$(BIN)/python benchmarks/peers.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache test-artifacts site build/docs-cache
