# Entry points (see README): `make quickstart`, `make lint` and `make test`. Each creates .venv when missing and
# installs what it needs; re-running is cheap (the install is redone only when pyproject.toml changes).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: quickstart lint test test-fast bench install clean help

help:
	@echo "make quickstart  built-in data -> teacher -> distilled student -> export -> serve -> bench"
	@echo "make lint        ruff format --check and ruff check (the rules in pyproject.toml)"
	@echo "make test        the full test suite"
	@echo "make bench       every script in benchmarks/, then rewrite BENCHMARKS.md"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

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
