# Tether: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c constraints.txt
export OMP_NUM_THREADS ?= 2

.PHONY: install install-dev demo test test-all lint bench clean

$(VENV)/.base: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) -e '.[dev]'
	touch $@

$(VENV)/.bench: $(VENV)/.dev
	$(PIP) -e '.[dev,bench]'
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

demo: $(VENV)/.base
	$(VENV)/bin/tether demo --out runs/demo

test: $(VENV)/.dev
	$(PY) -m pytest -q

test-all: $(VENV)/.dev
	$(PY) -m pytest -q -m ''

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests bench

bench: $(VENV)/.bench
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) runs .pytest_cache
