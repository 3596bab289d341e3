# make train: install, then run the planar experiment.  make test: install, then run the tests.
# make screenshots: the dashboard's screenshots in docs/, taken by the browser tests.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: train test screenshots

$(VENV)/installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

train: $(VENV)/installed
	$(PYTHON) experiments/planar.py

test: $(VENV)/installed
	$(PYTHON) -m pytest

screenshots: $(VENV)/installed
	TORCH_SHALLOW_SCREENSHOTS=docs $(PYTHON) -m pytest tests/test_browser.py
