# batchform: `make generate` renders every backend from spec/, `make test` runs the whole test suite.
# Both create .venv and install the pinned dependencies themselves on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NERVA := nerva-numpy==1.0.0 nerva-torch==1.0.0 nerva-jax==1.0.0 nerva-tensorflow==1.0.0

.PHONY: all setup generate verify report docs cpp test bench experiment-sparse train fuzz-asan clean

all: generate

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# The reference implementations are benchmarked against; their own pins would replace torch and jax.
	$(BIN)/pip install --quiet --no-deps $(NERVA)
	touch $@

generate: $(STAMP)
	$(BIN)/batchform generate
	$(MAKE) --no-print-directory cpp

verify: $(STAMP)
	$(BIN)/batchform verify

report: $(STAMP)
	$(BIN)/batchform report

# The documentation site, with the equation gallery of every spec: open site/index.html (no network needed).
docs: $(STAMP)
	$(BIN)/batchform docs --out site

cpp: $(STAMP)
	$(BIN)/batchform build-cpp

test: $(STAMP) cpp
	$(BIN)/python -m pytest

bench: $(STAMP) cpp
	$(BIN)/python -m bench $(BENCH_FLAGS)

# The sparse-training experiment: writes bench/sparse-training.md and .png (minutes; not part of `make test`).
# Pass EXPERIMENT_ARGS="--cifar10 DIR --steps 20" to use CIFAR-10 or change the budget.
experiment-sparse: $(STAMP) cpp
	$(BIN)/python -m bench.sparse_training $(EXPERIMENT_ARGS)

train: $(STAMP)
	$(BIN)/batchform train --dataset digits

# Every C++ kernel × argument × array layout (negative, zero, odd and overlapping strides, offsets, Fortran
# order) against a build of generated/cpp with AddressSanitizer + UBSan (minutes; `make test` runs a sample).
fuzz-asan: $(STAMP)
	$(BIN)/python tests/layout_fuzz.py --asan

clean:
	rm -rf build generated/cpp/build .batchform-cache reports site
