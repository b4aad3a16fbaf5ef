# Entry points (see README): on a fresh machine `make quickstart` and `make test`; also `make lint` and `make gpu-check`.
# Each creates .venv when missing and installs what it needs; re-running is cheap (the install is redone only when
# pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: quickstart lint test test-fast bench install gpu-install cpu-install gpu-check _swap-gpu clean help
# onnxruntime (CPU) and onnxruntime-gpu both install the module `onnxruntime` and overwrite each other's files, so
# the venv holds exactly one: `make gpu-install` swaps in onnxruntime-gpu and leaves $(GPU_MARK), so that a later
# reinstall (pyproject.toml changed) swaps it in again; `make cpu-install` swaps back (README, "GPU").
GPU_MARK := $(VENV)/.gpu

help:
	@echo "make quickstart  built-in data -> teacher -> distilled student -> export -> serve -> bench"
	@echo "make lint        ruff format --check and ruff check (the rules in pyproject.toml)"
	@echo "make test        the full test suite"
	@echo "make bench       every script in benchmarks/, then rewrite BENCHMARKS.md"
	@echo "make gpu-install swap the CPU onnxruntime for onnxruntime-gpu (NVIDIA GPU machines; cpu-install undoes it)"
	@echo "make gpu-check   the GPU smoke check (benchmarks/gpu_smoke.py): install, export, gate, serve, time"

# --no-compile: Python compiles a module's bytecode when it is first imported; compiling all of torch's files at
# install time instead took 40 of 106 s (BENCHMARKS.md, "How the quickstart's cpu settings were chosen").
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q --no-compile -e '.[all,dev]'
	@if [ -f $(GPU_MARK) ]; then $(MAKE) --no-print-directory _swap-gpu; fi
	@rm -f $(VENV)/.installed-* && touch $@

_swap-gpu:
	$(BIN)/python -m pip uninstall -y -q onnxruntime onnxruntime-gpu
	$(BIN)/python -m pip install -q --no-compile -e '.[gpu]'

gpu-install: $(STAMP)
	@touch $(GPU_MARK)
	@$(MAKE) --no-print-directory _swap-gpu
	@$(BIN)/python -c "from serve.runtimes.cuda_probe import onnxruntime_cuda as p; r = p(); \
	print('ONNX Runtime CUDA provider:', 'works here' if r.ok else r.reason)"

cpu-install: $(STAMP)
	@rm -f $(GPU_MARK)
	$(BIN)/python -m pip uninstall -y -q onnxruntime onnxruntime-gpu
	$(BIN)/python -m pip install -q --no-compile -e '.[all,dev]'

gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_smoke.py $(ARGS)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/tinymim quickstart $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
