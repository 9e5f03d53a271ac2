# Everything a fresh machine needs: `make test` and `make demo` create .venv and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	DS_BUILD_OPS=0 $(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/vlmguard demo --models tiny-models

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/guard.py
	HF_HUB_OFFLINE=1 $(PY) bench/rewards.py
	HF_HUB_OFFLINE=1 $(PY) bench/grpo.py

clean:
	rm -rf $(VENV) tiny-models .pytest_cache
