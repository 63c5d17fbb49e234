# Two entry points for a fresh machine with Python >= 3.11:
#   make demo   set up, migrate the embedded warehouse, run the example pipelines, show results
#   make test   set up, lint, type-check and run the whole test suite with coverage
#   make check  while working: lint, then the fast tier of the tests (not slow) on every core
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
WINDOW := --start 2026-01-01 --end 2026-01-08

.PHONY: setup demo test check lint typecheck docs pytest bench bench-http e2e clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/runner migrate
	$(BIN)/runner list
	$(BIN)/runner run events $(WINDOW)
	$(BIN)/runner run customers $(WINDOW)
	$(BIN)/runner run daily_revenue $(WINDOW)
	$(BIN)/runner run exports $(WINDOW)
	$(BIN)/python pipelines/demo_report.py

lint: $(STAMP)
	$(BIN)/ruff check runner tests pipelines benchmarks k8s docs
	$(BIN)/ruff format --check runner tests pipelines benchmarks k8s docs
	$(BIN)/lint-imports
	$(BIN)/runner render --check

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest --cov=runner --cov-report=term --cov-fail-under=85

docs: $(STAMP)
	$(BIN)/python docs/build_api.py docs/api

test: lint typecheck docs pytest

# The fast tier: no crash loops, image build, security scans or Helm-heavy suites (marked
# slow; `make test` runs them). One pytest-xdist worker per core, each its own process with
# its own chDB warehouse (tmp_path_factory is per worker).
check: lint
	$(BIN)/pytest -m "not slow" -n auto -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --out benchmarks/results

bench-http: $(STAMP)
	$(BIN)/python benchmarks/over_http.py --out benchmarks/results

e2e: $(STAMP)
	bash k8s/tools/e2e_kind.sh

clean:
	rm -rf $(VENV) .warehouse logs exports .coverage .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
