# batchform: `make generate` renders every backend from spec/, `make test` runs the whole test suite.
# Both create .venv and install the pinned dependencies themselves on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NERVA := nerva-numpy==1.0.0 nerva-torch==1.0.0 nerva-jax==1.0.0 nerva-tensorflow==1.0.0

.PHONY: all setup generate verify report docs cpp test test-quick gpu-check bench experiment-sparse experiment-depth experiment-fashion-mnist fashion-mnist train fuzz-asan clean

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

# The whole suite on every core (pytest-xdist; PYTEST_WORKERS=1 runs it in one process). Each test file runs
# on one worker (--dist loadfile), so a module's expensive fixture (the docs site, a user project, a venv) is
# built once; the slow files start first (tests/conftest.py's order, kept by --no-loadscope-reorder).
# The 25 slowest are listed at the end: where the suite's time goes. First every built-in spec is proved (its
# backward, tangent and derived equations) on every core, into the proof cache: on a fresh machine the tests
# that generate, derive or build the docs would otherwise each prove them again, one process each.
PYTEST_WORKERS ?= auto
test: $(STAMP) cpp
	$(BIN)/batchform verify --tangents --derived --quiet
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

# The edit loop, about a minute: the tests of what a change usually touches, longest first. The loader and the
# compiler's passes; the prover (both methods, the cache, its pool); every kernel of NumPy, PyTorch and C++
# against SymPy's values; the command line; the check that generated/ is not stale. The JAX and TensorFlow
# cases, the slow tests and the rest are left to `make test` (what CI runs). Measured: 1,438 tests in 54 s
# on 2 idle cores with warm caches (2026-12-08).
QUICK_TESTS := tests/test_spec_loading.py tests/test_indexed.py tests/test_torch_backend.py tests/test_proofs.py \
	tests/test_proof_classes.py tests/test_proof_workers.py tests/test_cpp_backend.py tests/test_pass_schedule.py \
	tests/test_pipeline.py tests/test_fused_updates.py tests/test_kernel_shapes.py tests/test_update_rules.py \
	tests/test_prover_inputs.py tests/test_proof_cache.py tests/test_numpy_backend.py tests/test_float32.py \
	tests/test_numerics.py tests/test_torch_conventions.py tests/test_specs.py tests/test_rewrites.py \
	tests/test_outputs.py tests/test_cli_help.py tests/test_import_graph.py \
	tests/test_generation.py::test_committed_generated_code_is_not_stale
test-quick: $(STAMP) cpp
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow" -k "not jax and not tensorflow" \
	  $(QUICK_TESTS) $(PYTEST_ARGS)

# The generated torch, JAX and TensorFlow code on a GPU against the CPU (bench/gpu_check.py; says so and
# exits 0 where no framework sees a GPU). The same checks as tests: pytest -m gpu.
gpu-check: $(STAMP)
	$(BIN)/python -m bench.gpu_check --out bench/gpu-check.md $(GPU_CHECK_ARGS)

bench: $(STAMP) cpp
	$(BIN)/python -m bench $(BENCH_FLAGS)
	$(BIN)/python -m bench.gpu_check --bench-only --out bench/results-gpu.md

# The sparse-training experiment: writes bench/sparse-training.md and .png (synthetic CIFAR-shaped batches for
# time, scaling), then the real-data ablation bench/sparse-ablation.md and .png (densities × static/SET/RigL ×
# seeds on Fashion-MNIST and digits, against PyTorch masks and CSR; about an hour on 2 idle cores). Not part
# of `make test`. EXPERIMENT_ARGS="--cifar10 DIR --steps 20" and ABLATION_ARGS="--epochs 3 --seeds 3" change them.
experiment-sparse: $(STAMP) cpp fashion-mnist
	$(BIN)/python -m bench.sparse_training $(EXPERIMENT_ARGS)
	$(BIN)/python -m bench.sparse_ablation $(ABLATION_ARGS)

# Depth 1-32 hidden layers, batch norm and residual blocks, `batchform train` against PyTorch autograd on
# Fashion-MNIST: writes bench/depth.md and .png. DEPTH_ARGS="--epochs 2 --width 128" changes the budget.
experiment-depth: $(STAMP) cpp fashion-mnist
	$(BIN)/python -m bench.depth $(DEPTH_ARGS)

train: $(STAMP)
	$(BIN)/batchform train --dataset digits

# Every C++ kernel × argument × array layout (negative, zero, odd and overlapping strides, offsets, Fortran
# order) against a build of generated/cpp with AddressSanitizer + UBSan (minutes; `make test` runs a sample).
fuzz-asan: $(STAMP)
	$(BIN)/python tests/layout_fuzz.py --asan

# Fashion-MNIST's idx files from Debian's package, installed with apt where this runs as root.
FASHION_MNIST := /usr/share/datasets/fashion-mnist
fashion-mnist:
	@test -f $(FASHION_MNIST)/train-labels-idx1-ubyte.gz || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else \
	    echo "Fashion-MNIST is not in $(FASHION_MNIST): run 'sudo apt-get install dataset-fashion-mnist'," \
	         "or train with --dataset fashion-mnist --data-dir FOLDER (the four idx files)" >&2; exit 1; \
	  fi; }

# A dense 784-1024-512-10 MLP on Fashion-MNIST (the data set's README lists an MLP at 0.8833 test accuracy).
# `batchform train` (C++, 10 epochs, Nesterov(0.9), η = 0.05 × 0.2 after epochs 5 and 8, batch 100), then 2
# epochs of the same seed on numpy, torch and cpp; writes bench/fashion-mnist.md.
# EXPERIMENT_ARGS="--epochs 20 --backend torch" changes it.
experiment-fashion-mnist: $(STAMP) cpp fashion-mnist
	$(BIN)/python -m bench.fashion_mnist $(EXPERIMENT_ARGS)

clean:
	rm -rf build generated/cpp/build .batchform-cache reports site
