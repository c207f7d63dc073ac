# parex build glue. Every target is idempotent and does nothing when its inputs are unchanged.
#
#   make run    set up, build, then run the default benchmark matrix
#   make test   set up, build, then rustfmt's check, cargo tests, pytest, stubtest, mypy,
#               conformance and the mainnet replay (pytest replays every block too:
#               tests/test_replay.py)
#   make replay set up, build, then replay the shared mainnet fixture against its headers
#   make conformance  set up, build, then run every execution-spec state and blockchain test
#               of the shared EEST fixture through Block-STM at 2 threads (about 25 s on two
#               shared cores; part of make test)
#
# Needs python3 (>= 3.11), cargo, node and npm; fetches from PyPI, crates.io and npm only.

SHELL := /bin/bash
.DEFAULT_GOAL := build

PYTHON  ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

VENV_STAMP      := $(VENV)/.parex-venv
NODE_STAMP      := contracts/node_modules/.parex-npm
CLIENTS_STAMP   := tests/clients/node_modules/.parex-npm
CONTRACT_OUT    := python/parex/_contracts/Token.json python/parex/_contracts/Pair.json
BUILD_STAMP     := $(VENV)/.parex-build
RUST_SOURCES    := Cargo.toml $(wildcard Cargo.lock) $(shell find crates -name '*.rs' -o -name Cargo.toml 2>/dev/null)
MAINNET_FIXTURE ?= ../shared/fixtures/mainnet-blocks.tar.gz
EEST_FIXTURE    ?= ../shared/fixtures/eest-v5.4.0-cancun-prague.tar.gz

.PHONY: venv contracts clients build run replay conformance test fmt-check cargo-test pytest stubtest typecheck clean

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements-dev.txt
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

contracts: $(CONTRACT_OUT)
$(NODE_STAMP): contracts/package.json contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@
$(CONTRACT_OUT) &: $(NODE_STAMP) contracts/build.js $(wildcard contracts/src/*.sol)
	cd contracts && node build.js
	@touch $(CONTRACT_OUT)

# The unmodified clients the node tests drive (ethers, viem, cast) and anvil, their oracle.
clients: $(CLIENTS_STAMP)
# `npm install` from the lock file, not `npm ci`: the registry here serves only the linux-amd64
# builds of anvil and cast, and `npm ci` refuses a lock whose other-platform optional packages
# cannot be resolved.
$(CLIENTS_STAMP): tests/clients/package.json tests/clients/package-lock.json
	cd tests/clients && npm install --no-audit --no-fund --loglevel=error
	@touch $@

# `maturin develop --release` builds with the workspace's tuned release profile and installs
# parex (editable: python/parex plus the compiled parex/_core) into the venv.
# The install is editable: Python sources and compiled contracts are read from python/parex,
# so only Rust sources and packaging metadata call for a rebuild.
build: $(BUILD_STAMP) $(CONTRACT_OUT)
$(BUILD_STAMP): $(VENV_STAMP) $(RUST_SOURCES) pyproject.toml
	@set -o pipefail; $(VENV)/bin/maturin develop --release --quiet 2>&1 \
		| { grep -Ev '^(Requirement already satisfied|Ignoring |Looking in )' || true; }
	@touch $@

run: build
	$(VENV)/bin/parex bench

# Extracts the fixture into .cache/fixtures once (ignored), then checks every block.
replay: build
	$(VENV)/bin/parex replay $(MAINNET_FIXTURE) --cache-dir .cache/fixtures

# Extracts the fixture into .cache/fixtures once (ignored), then runs every state test and
# every blockchain test (full block processing, parex-chain) through Block-STM.
conformance: build
	$(VENV)/bin/parex conformance $(EEST_FIXTURE) --threads 2 --cache-dir .cache/fixtures

# rustfmt comes with rustup's default profile but not with every cargo; where it is missing
# the check says so and passes, rather than fail a machine that cannot run it.
fmt-check:
	@if cargo fmt --version >/dev/null 2>&1; then cargo fmt --all --check; \
	else echo "fmt-check: rustfmt not installed, Rust formatting not checked"; fi

cargo-test:
	cargo test --workspace

pytest: build clients
	$(VPY) -m pytest -q

stubtest: build
	$(VPY) -m mypy.stubtest parex._core

typecheck: build
	$(VPY) -m mypy

test: build fmt-check cargo-test pytest stubtest typecheck conformance replay

clean:
	rm -rf $(VENV) contracts/node_modules python/parex/_contracts python/parex/_core*.so
