# The two commands: `make demo` (the main job) and `make test` (the whole suite).
# Each does its own set-up on a fresh machine and reuses an existing .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.banana-installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup test demo lint pytest clean-out
setup: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

-include mk/*.mk

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache  # the layer contracts of pyproject.toml [tool.importlinter] (a stale cache hid a cycle once)

pytest: setup $(TEST_PREREQS)
	$(PY) -m pytest

test: lint pytest $(EXTRA_TESTS)

demo: setup $(DEMO_PREREQS)
	$(PY) demo.py
