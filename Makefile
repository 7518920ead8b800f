# Two commands for a newcomer: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv on first use and installs the project with the pinned versions in
# constraints.txt (torch and torchvision as a matching pair from PyPI).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/drag.py seed=0 'points=[[32,40,32,44]]' hydra.run.dir=outputs/demo

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m ''

clean:
	rm -rf outputs multirun .pytest_cache
