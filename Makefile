# make train: install, then run the planar experiment.  make test: install, check, then run the tests.
# make check: lint, format check and type check.  make docs: the documentation site in docs/_build/html.
# make screenshots: the dashboard's screenshots in docs/, taken by the browser tests.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: train test check docs screenshots

$(VENV)/installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

train: $(VENV)/installed
	$(PYTHON) experiments/planar.py

check: $(VENV)/installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy torch_shallow

test: check
	$(PYTHON) -m pytest

# -W: every warning is an error (strict); --keep-going: all of them reported at once
docs: $(VENV)/installed
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

screenshots: $(VENV)/installed
	TORCH_SHALLOW_SCREENSHOTS=docs $(PYTHON) -m pytest tests/test_browser.py
