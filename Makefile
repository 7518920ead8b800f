# Two commands for a newcomer: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv on first use and installs the project with the pinned versions in
# constraints.txt (torch and torchvision as a matching pair from PyPI).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-record test-all install browser app gpu-check docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/drag.py seed=0 'points=[[32,40,32,44]]' hydra.run.dir=outputs/demo

# The web editor's tests drive a real headless Chromium: Debian's chromium and chromium-driver
# (installed here when missing; needs root or sudo). With DRAGGAN_REQUIRE_BROWSER=1 a missing
# browser fails those tests instead of skipping them.
browser:
	@if ! (command -v chromium >/dev/null && command -v chromedriver >/dev/null); then \
	  echo "browser: installing Debian's chromium and chromium-driver"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo --preserve-env=DEBIAN_FRONTEND" ); export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }; \
	fi; \
	echo "browser: $$(chromium --version 2>/dev/null | head -1), $$(chromedriver --version | cut -d' ' -f1-2)"

# One worker per core (pytest-xdist), a test file per worker at a time (its module fixtures built once).
PYTEST_WORKERS ?= -n auto --dist loadfile

test: $(STAMP) browser
	DRAGGAN_REQUIRE_BROWSER=1 $(PY) -m pytest $(PYTEST_WORKERS)

# The same run, its test count and time written to docs/results/test_suite.json and the README's sentence remade.
test-record: $(STAMP) browser
	DRAGGAN_REQUIRE_BROWSER=1 $(PY) -m pytest $(PYTEST_WORKERS) tests --record-suite docs/results/test_suite.json
	$(PY) scripts/make_docs.py

# The docs' tables and figures from docs/results/*.json (scripts/make_docs.py --check: only compare).
docs: $(STAMP)
	$(PY) scripts/make_docs.py

test-all: $(STAMP) browser
	DRAGGAN_REQUIRE_BROWSER=1 $(PY) -m pytest $(PYTEST_WORKERS) -m ''

app: $(STAMP)
	$(PY) scripts/app.py

# On a machine with a GPU: every CUDA path, the drag benchmark and a trainer probe, in one table
# (docs/benchmarks.md). Runs in .venv when there is one, else on the machine's own python3 and
# PyTorch (the project's pure-Python dependencies installed, e.g. from wheels). ARGS='only=[drag]' ...
GPU_PY := $(shell test -x $(PY) && echo $(PY) || echo $(PYTHON))
gpu-check:
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_PY) scripts/gpu_check.py $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
