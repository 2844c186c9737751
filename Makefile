# make demo  - set up everything and run the story on embedded defaults
# make test  - set up everything and run the test suite (lint, types, tests)
# make bench - set up everything and run the benchmarks
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSTEM_PACKAGES := mosquitto mosquitto-clients pcscd vsmartcard-vpcd pcsc-tools opensc \
                   swig libpcsclite-dev python3-dev iproute2 util-linux

.PHONY: all demo test bench lint setup system-packages clean

all: test

system-packages:
	@scripts/ensure-system-packages $(SYSTEM_PACKAGES)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: system-packages $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

demo: setup
	$(BIN)/mps-demo

bench: setup
	$(BIN)/mps-bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
