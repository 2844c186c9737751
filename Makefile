# make demo  - set up everything and run the story on embedded defaults
# make test  - set up everything and run the test suite (lint, types, tests)
# make bench - set up everything and run the benchmarks
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A second virtualenv holding the lowest version of each dependency pyproject.toml allows.
LOWEST       := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed
SYSTEM_PACKAGES := mosquitto mosquitto-clients pcscd vsmartcard-vpcd pcsc-tools opensc \
                   swig libpcsclite-dev python3-dev iproute2 util-linux \
                   chromium chromium-driver

.PHONY: all demo test test-lowest bench lint setup system-packages clean

all: test

system-packages:
	@scripts/ensure-system-packages $(SYSTEM_PACKAGES)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# compat: the project directory on sys.path through a plain .pth line. The default
	# editable finder costs every process ~15 ms of imports at start (mps-lpa's budget).
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	@touch $@

setup: system-packages $(STAMP)

# Rebuilt only when pyproject.toml (or the pinning script) changes.
$(LOWEST_STAMP): pyproject.toml .ci/lowest-constraints
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install --quiet --upgrade pip
	$(PYTHON) .ci/lowest-constraints pyproject.toml > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/pip install --quiet -c $(LOWEST)/constraints.txt -e '.[dev]' \
		--config-settings editable_mode=compat
	@touch $@

# The unit tests against those lowest versions: a lower bound that no longer works fails here.
test-lowest: system-packages $(LOWEST_STAMP)
	$(LOWEST)/bin/pytest -q -p no:cacheprovider tests/unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint test-lowest
	$(BIN)/pytest

demo: setup
	$(BIN)/mps-demo --screenshots out/demo

bench: setup
	$(BIN)/mps-bench

clean:
	rm -rf $(VENV) $(LOWEST) .mypy_cache .ruff_cache .pytest_cache
