# tabgpt: two user-facing targets.
#   make serve   set up, then serve the site at http://127.0.0.1:8000 (mkdocs serve)
#   make test    set up, then run the whole test suite
# `setup` is idempotent: it creates .venv, (re)installs the project only when pyproject.toml changed,
# and runs `npm ci` only when node_modules is missing or package-lock.json changed.

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
INSTALL_STAMP := $(VENV)/.tabgpt-installed
NPM_STAMP := node_modules/.tabgpt-npm-ci
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# pip extras to install; CI adds `bench` (PyTorch CPU) so the numpy-vs-PyTorch checks run there too.
EXTRAS ?= test
# mkdocs-material prints a multi-line banner about its successor on every build otherwise.
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve test setup

serve: setup
	$(VENV)/bin/mkdocs serve --dev-addr $(HOST):$(PORT)

test: setup
	$(VENV_PY) -m pytest -q --durations=20 $(PYTEST_ARGS)

setup: $(INSTALL_STAMP) $(NPM_STAMP)

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALL_STAMP): pyproject.toml | $(VENV_PY)
	$(VENV_PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

$(NPM_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund
	touch $@
