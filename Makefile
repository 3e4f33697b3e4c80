# The two commands a new user needs: `make demo` and `make test`.
# Each sets up .venv/ on its own; torch comes first, pinned, so that pip takes
# the CPU wheel on a CPU machine instead of a multi-GB CUDA build.
VENV        := .venv
PY          := $(VENV)/bin/python
# llama-cpp-python compiles llama.cpp on install; its wheel is built once per machine and reused.
# Portable, not -march=native: on a CPU with AMX a native build takes ggml's AMX kernels, and CI
# died with SIGILL in test_gguf's first Q4_K forward pass on a host listing the same CPU flags
# (so the same cached wheel) that evidently does not grant AMX tile state. AVX2/FMA/F16C (ggml's non-native default) runs on
# any x86-64-v3 machine. The cache and the venv's stamp are keyed by these arguments and the architecture,
# so changing them (CUDA: LLAMA_CPP_EXTRA_CMAKE_ARGS="-DGGML_CUDA=on") builds and installs a wheel built so.
LLAMA_CPP_EXTRA_CMAKE_ARGS ?=
LLAMA_CPP_CMAKE_ARGS := $(strip -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF $(LLAMA_CPP_EXTRA_CMAKE_ARGS))
BUILD_KEY   := $(shell echo "$$(uname -m) $(LLAMA_CPP_CMAKE_ARGS)" | cksum | cut -d' ' -f1)
WHEELS_DIR  ?= $(HOME)/.cache/blogtune/wheels
WHEELS      := $(WHEELS_DIR)/build-$(BUILD_KEY)
STAMP       := $(VENV)/.blogtune-installed-$(BUILD_KEY)
LLAMA_CPP_VERSION := 0.3.36
# Its source distribution is kept too: it carries llama.cpp's copy of Qwen's vocabulary, from which
# blogtune builds Qwen3's tokenizer offline (core/qwen3_tokenizer.py reads it from here).
LLAMA_CPP_SDIST := $(HOME)/.cache/blogtune/sdist/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
# Debian packages the tests need: the browser test drives the UI in Debian's chromium,
# because playwright's own browser download is not reachable from every machine; the
# PostgreSQL storage test starts a throwaway server from Debian's postgresql.
APT_PACKAGES := chromium postgresql
SUDO        := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: setup system-deps demo test test-fast validate ui clean gpu-check-carry

setup: $(STAMP)

$(PY):
	python3 -m venv $(VENV)

# The venv's pip, and source only for llama-cpp-python itself (its build tools come as wheels).
$(LLAMA_CPP_SDIST): | $(PY)
	mkdir -p $(dir $@)
	$(PY) -m pip download --quiet --no-deps --no-binary llama-cpp-python -d $(dir $@) llama-cpp-python==$(LLAMA_CPP_VERSION)

# llama-cpp-python is force-installed from the wheel: pip keeps an installed one of the same version, however built.
$(STAMP): pyproject.toml $(LLAMA_CPP_SDIST) | $(PY)
	rm -f $(VENV)/.blogtune-installed*
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	mkdir -p $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(PY) -m pip wheel --quiet --no-deps -w $(WHEELS) $(LLAMA_CPP_SDIST)
	$(PY) -m pip install --quiet --no-deps --force-reinstall --no-index --find-links $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(PY) -m pip install --quiet --find-links $(WHEELS) -e '.[test]'
	touch $(STAMP)

# The instance config (pool limits) goes into DAGSTER_HOME once; a user's own is never overwritten.
$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $@

demo: setup $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster asset materialize -m blogtune_assets.definitions --select '*'
	$(PY) -m blogtune_assets.summary

# Installs only what is missing, and only where apt-get exists; elsewhere the tests that
# need a package skip and say which.
system-deps:
	@command -v apt-get >/dev/null || exit 0; \
	missing=$$(for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || echo $$pkg; done); \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

test: setup system-deps
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

validate: setup
	$(VENV)/bin/dagster definitions validate -m blogtune_assets.definitions

# Loopback only: the UI launches runs and shows run logs, and has no login.
ui: setup $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -h 127.0.0.1 -m blogtune_assets.definitions

# What benchmarks/gpu_check.py needs on a lent GPU machine (Python 3.12, torch and transformers already there,
# no registry): the wheels it lacks, in .whl/, and Qwen3's tokenizer built here, in .gpu_check/. Both are
# git-ignored; the device tool carries them (carry: [.whl, .gpu_check]).
# transformers and peft too: the machine's own transformers (5.17) is older than the one blogtune pins.
GPU_WHEELS := transformers==5.23.0 peft==0.21.2 trl==1.16.0 datasets==5.2.0 bitsandbytes==0.50.2 dill==0.4.1 multiprocess==0.70.19
gpu-check-carry: setup
	rm -rf .whl .gpu_check && mkdir -p .gpu_check
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)
	tar -cJf .gpu_check/qwen3_tokenizer.tar.xz -C $$($(PY) -c 'from blogtune_assets.core.qwen3_tokenizer import qwen3_tokenizer_dir as d; print(d(log=lambda line: None))') .
	du -sh .whl .gpu_check

clean:
	rm -rf data/blogtune_home data/dagster_home
