# make book   executes every notebook (PROFILE=quick by default) and builds _build/html
# make test   runs the test suite (unit tests, smoke-profile book build, browser check)
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
DEVICE ?= auto
BIN := $(VENV)/bin

.PHONY: venv assets browser book test clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	touch $@

assets:
	tools/vendor_assets.sh

browser:
	tools/install_browser.sh

book: venv assets
	$(BIN)/python tools/build_book.py --profile $(PROFILE) --device $(DEVICE)

test: venv assets browser
	$(BIN)/python -m pytest

clean:
	rm -rf _build book/*.ipynb
