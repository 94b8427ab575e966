# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv on first use.
# torch is pinned to 2.13.0 here because that is the CPU build available locally; any other spec
# would pull multi-GB CUDA wheels. The package itself accepts any torch>=2.1,<3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test install install-dev lint clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[viz,onnx]'
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install -q -e '.[viz,onnx,dev]'
	touch $@

install: $(VENV)/.base
install-dev: $(VENV)/.dev

demo: $(VENV)/.base
	$(VENV)/bin/prunepose demo --out outputs/demo

test: $(VENV)/.dev
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) outputs work_dirs .pytest_cache
