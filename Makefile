# gradus: every target does its own set-up from a fresh clone.
#   make demo   environment + embedded default + the main job end to end
#   make test   environment + the default test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gradus-installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# DeepSpeed must not try to compile CUDA ops at install time on CPU machines.
export DS_BUILD_OPS := 0
# wandb never phones home unless a user opts in.
export WANDB_MODE ?= offline

.PHONY: env demo test test-slow bench clean

env: $(STAMP)

# pip (not uv/poetry): only pip picks up the machine's local CPU torch wheel. The lock file pins
# the tested set; torchaudio/torchcodec are left out (CUDA builds that break `from vllm import LLM`).
$(STAMP): requirements/cpu.lock.txt setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@start=$$(date +%s); \
	$(PY) -m pip install -q -r requirements/cpu.lock.txt 2>&1 | { grep -v "^WARNING: Location" || true; } ; \
	$(PY) -m pip install -q --no-deps -e . 2>&1 | { grep -v "^WARNING: Location" || true; } ; \
	$(PY) -m engine.env.install_hooks && \
	$(PY) -c "import torchvision, vllm, verl, ray, transformers, deepspeed, trl" && \
	echo $$(( $$(date +%s) - start )) > $(VENV)/.gradus-install-s && \
	echo "environment ready in $$(cat $(VENV)/.gradus-install-s)s" && touch $(STAMP)

demo: env
	$(VENV)/bin/gradus demo

test: env
	$(PY) -u -m pytest tests -q  # -u: CI's log shows how far a run got, even if it is cut off

test-slow: env
	$(PY) -m pytest tests -q -m slow

bench: env
	$(PY) benchmarks/verifiers.py
	$(PY) benchmarks/pism.py
	$(PY) benchmarks/pism_throughput.py --parts p2
	$(PY) benchmarks/pism_throughput.py --parts p3
	$(PY) benchmarks/pism_throughput.py --parts speculate
	$(PY) benchmarks/pism_throughput.py --parts ceiling --ceiling-per-family 1 10 40
	$(PY) benchmarks/pism_throughput.py --parts speculate --p3-per-family 40 --speculate-after 3 --record-key speculate_at_240_samples
	$(PY) benchmarks/pism_throughput.py --parts prefill --block-size 32
	$(PY) benchmarks/pism_throughput.py --parts pipeline --pipeline-per-family 40
	$(PY) benchmarks/pism_throughput.py --parts pipeline --pipeline-per-family 99 --record-key pipeline_at_594_samples
	$(PY) benchmarks/cmab.py
	$(PY) benchmarks/cmab_throughput.py
	$(PY) benchmarks/mixture.py
	$(PY) benchmarks/grpo_tiny.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/warmstart.py
	$(PY) benchmarks/generation_engines.py
	$(PY) benchmarks/demo.py
	$(PY) benchmarks/pism_stability.py --run outputs/bench/demo --draws 20 40

clean:
	rm -rf $(VENV) outputs
