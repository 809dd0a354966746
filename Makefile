# Each target sets up .venv when missing (or when pyproject.toml changed), then does its job.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lab bench soak lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m simkit demo --out demo-output

test: $(STAMP)
	$(PY) -m ruff check simkit tests
	$(PY) -m pytest
	$(PY) -m pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg --nbval-current-env

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks

bench: $(STAMP)
	$(PY) -m simkit bench

soak: $(STAMP)
	$(PY) -m simkit soak

lint: $(STAMP)
	$(PY) -m ruff check simkit tests
	$(PY) -m ruff format --check simkit tests

clean:
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
