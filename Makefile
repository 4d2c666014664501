# effcourse: `make course` runs the lessons, `make test` runs the test suite.
# Both install into the active virtual/conda environment, or create .venv if none is active.
PYTHON ?= python3
ENV_DIR := $(or $(VIRTUAL_ENV),$(CONDA_PREFIX),.venv)
PY := $(ENV_DIR)/bin/python
STAMP := $(ENV_DIR)/.effcourse-installed
BOOK_OUT ?= _build

.PHONY: setup course test book clean

$(ENV_DIR)/bin/python:
	$(PYTHON) -m venv $(ENV_DIR)

$(STAMP): pyproject.toml | $(ENV_DIR)/bin/python
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,book]"
	touch $@

setup: $(STAMP)

course: setup  ## execute every lesson headlessly (profile: $$EFFCOURSE_PROFILE, default workshop) and compare the cards
	$(PY) -m effcourse run

test: setup  ## unit tests, every notebook under nbval in the smoke profile, and the book build
	$(PY) -m pytest

book: setup  ## build the website from the notebooks' stored outputs into $(BOOK_OUT)/_build/html
	$(ENV_DIR)/bin/jupyter-book build . --config book/_config.yml --toc book/_toc.yml --path-output $(BOOK_OUT) -W -n --keep-going

clean:
	rm -rf _build .effcourse/executed
