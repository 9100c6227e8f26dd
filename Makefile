# make book   executes every notebook (PROFILE=quick by default) and builds _build/html
# make lint   runs the linter (ruff, configured in pyproject.toml) on the code, tests, tools, benchmarks and chapters
# make test   runs make lint, then the test suite (unit tests, workflow lint, smoke-profile book build, browser check)
# make exercises  writes the student notebooks (exercises/, the chapters without their solutions)
# make lab    installs JupyterLab (requirements-lab.txt) and opens the chapters as notebooks
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
DEVICE ?= auto
NB ?= intro
LAB_ARGS ?=
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
BIN := $(VENV)/bin

.PHONY: venv dev assets browser book exercises lint test lab clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	touch $@

# development checks used by the tests (ruff for make lint, actionlint for .github/workflows)
dev: $(VENV)/.dev-installed

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

$(VENV)/.lab-installed: $(VENV)/.installed requirements-lab.txt
	$(BIN)/pip install -r requirements-lab.txt
	touch $@

assets:
	tools/vendor_assets.sh

browser:
	tools/install_browser.sh

book: venv assets
	$(BIN)/python tools/build_book.py --profile $(PROFILE) --device $(DEVICE)

exercises: venv
	$(BIN)/python tools/make_exercises.py

LINTED := shortbias_lib tests tools bench book/*.py

lint: dev
	$(BIN)/ruff check $(LINTED)

test: venv dev assets browser lint
	$(BIN)/python -m pytest

# Pair every chapter source with a notebook (book/X.py <-> book/X.ipynb; the .py stays the
# source, the build never writes either) and open JupyterLab on chapter NB (make lab NB=smd).
# With the Jupytext extension, saving a notebook updates its .py as well.
lab: $(VENV)/.lab-installed
	$(BIN)/jupytext --sync book/*.py
	$(BIN)/jupyter lab $(LAB_ROOT) $(LAB_ARGS) book/$(NB).ipynb

clean:
	rm -rf _build
