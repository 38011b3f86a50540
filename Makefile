# kdmri: every target sets up .venv itself (Python 3.11 + make is all a fresh machine needs).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kdmri-installed

.PHONY: install demo test nbval lint masks demo-data lab benchmark docs figures clean study

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m kdmri check-env
	touch $(STAMP)

demo-data: install
	$(PY) -m kdmri demo-data

# The study (docs/RESULTS.md): prints its cost plan, then runs (resumes) every unit not yet
# done, two processes at a time; STUDY_ROOT outside the work tree keeps it across sessions.
STUDY_ROOT ?= experiments/study
study: install
	$(PY) -m kdmri demo-data
	$(PY) -m kdmri study --root $(STUDY_ROOT) --jobs 2

# Every notebook on the demo data (params/demo_4x.yaml) with papermill: runs/demo/acc_4x/*.ipynb
# and runs/summary.md (docs/NOTEBOOKS.md). = demo-data + batch --params demo_4x.
demo: install
	$(PY) -m kdmri demo

# The documentation site (docs/SITE.md): build/site/index.html from the executed notebooks of
# `make demo` (runs/demo/acc_4x/), the docs/ pages and the docstrings. Stops if there is no run.
docs: install
	$(PY) -m kdmri docs

# The schematics of the README (docs/figures/*.png), drawn from the architecture definitions.
figures: install
	$(PY) -m kdmri figures

# The tests marked `numerics` (they assert trained numbers) run a second time under another CPU
# kernel path, so that a result that holds only on this CPU fails here (docs/TESTING.md).
SECOND_KERNEL_PATH := ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default

test: install
	$(PY) -m ruff check kdmri tests notebooks
	$(PY) -m pytest --durations=15
	env $(SECOND_KERNEL_PATH) $(PY) -m pytest -p no:cacheprovider -m numerics
	$(MAKE) --no-print-directory nbval

# The notebooks with their default parameters (the quick profile of params/ci.yaml), checking
# the outputs of the cells tagged nbval-check-output; experiments/quick is their scratch folder.
nbval: install
	rm -rf experiments/quick
	$(PY) -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900 notebooks/

masks: install
	$(PY) -m kdmri masks --all

benchmark: install
	$(PY) -m kdmri benchmark --out benchmarks/results.md

lab: install
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) runs build .pytest_cache
