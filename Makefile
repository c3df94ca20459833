# Two entry points (README "Quick start"): `make demo` and `make test`.
# Only Python 3.11 and make are assumed; everything else goes into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SAMPLE := data/samples/policies_sample.csv
DATE   := 2026-11-20

.PHONY: demo test venv bench sample clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,spark]'
	touch $(STAMP)

## the nightly job on the bundled sample (embedded SQLite store under .custdq/)
demo: venv
	$(BIN)/custdq run $(SAMPLE) --business-date $(DATE) --agents data/samples/agents_sample.csv
	@echo "outputs: out/$(DATE)/"

## the gates (ruff: pyflakes + bugbear + flake8-bandit's security rules, each waiver explained; the packages' layers (import-linter,
## pyproject.toml); mypy on the rules and the whole library; the docs site builds), then the whole test suite, one test
## file per core at a time (pytest-xdist); the 15 slowest tests are printed, to keep CI under 25 minutes
test: venv
	$(BIN)/ruff check --quiet .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/mkdocs build --strict --quiet
	@$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=15; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

## benchmarks (figures go into docs/benchmarks.md by hand, with the machine they ran on)
bench: venv
	$(BIN)/python -m benchmarks --rows 1000000
	$(BIN)/python -m benchmarks.ids --rows 10000000
	$(BIN)/python -m benchmarks.phones --rows 10000000
	$(BIN)/python -m benchmarks.book --book 20000000
	$(BIN)/python -m benchmarks.cases --rows 1000000
	$(BIN)/python -m benchmarks.scale --rows 1000000 10000000 --runs 3
	$(BIN)/python -m benchmarks.scale --rows 1000000 --runs 1 --defect-rate 1.0
	$(BIN)/python -m benchmarks.hashing
	$(BIN)/python -m benchmarks.nights resend --rows 1000000
	$(BIN)/python -m benchmarks.nights series --nights 20 --new 500000 --resent 100000

## regenerate the bundled sample (the exact command is recorded in data/samples/README.md)
sample: venv
	$(BIN)/custdq sample --rows 2000 --seed 20261120 --out $(SAMPLE) --agents-out data/samples/agents_sample.csv

clean:
	rm -rf $(VENV) out .custdq .pytest_cache .site
