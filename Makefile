# The whole set-up on a fresh machine with python3 and make: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test bench lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per extra set, re-made when pyproject.toml changes.
$(VENV)/.installed-base: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e .
	@touch $@

# The test set includes Spark (tests/test_spark.py runs it in local mode): pyspark is a ~430 MB download.
$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e '.[test,spark]'
	@touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python pyproject.toml
	$(PIP) install -e '.[test,dev,bench,spark]'
	@touch $@

demo: $(VENV)/.installed-base
	$(VENV)/bin/clvforecast demo --out reports/cdnow_report.html

# --dist loadfile: the tests of one file run on one worker, so tests/test_spark.py starts one JVM, not one per
# worker. (--dist loadgroup with its xdist_group mark would group only those, but with pytest 9.2 and
# pytest-xdist 3.8 it silently does not group: pytest-xdist issue 1386.)
test: $(VENV)/.installed-test
	MPLBACKEND=Agg $(PY) -m pytest -n auto --dist loadfile -q tests notebooks --nbmake --nbmake-timeout=300

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/run_all.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check clvforecast tests benchmarks
	$(VENV)/bin/mypy clvforecast

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis build dist
