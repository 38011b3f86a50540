# kdmri: every target sets up .venv itself (Python 3.11 + make is all a fresh machine needs).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kdmri-installed

.PHONY: install demo test lint masks demo-data lab benchmark clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m kdmri check-env
	touch $(STAMP)

demo-data: install
	$(PY) -m kdmri demo-data

demo: install
	$(PY) -m kdmri demo

test: install
	$(PY) -m ruff check kdmri tests
	$(PY) -m pytest

masks: install
	$(PY) -m kdmri masks --all

benchmark: install
	$(PY) -m kdmri benchmark --out benchmarks/results.md

lab: install
	$(PY) -m pip install --quiet "jupyterlab>=4"
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) runs .pytest_cache
