import os
import sys

import pytest

# TensorFlow (imported once per session by whichever test needs it first): no start-up logs, deterministic
# kernels (no oneDNN reordering), and one thread each for its op pools, so that it never oversubscribes the
# machine's cores beside the other tests' processes. Set before any import of tensorflow or keras.
for _key, _value in {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "1",
                     "TF_NUM_INTEROP_THREADS": "1", "KERAS_BACKEND": "tensorflow"}.items():
    os.environ.setdefault(_key, _value)

from batchform.codegen.load.loader import load_all
from batchform.codegen.lower.lower import lower
from batchform.codegen.passes.schedule import optimize


@pytest.fixture(scope="session")
def loaded_specs():
    return {s.name: s for s in load_all()}


@pytest.fixture(scope="session")
def lowered(loaded_specs):
    """spec name → its generated kernels, in order (forward first)."""
    return {name: lower(optimize(s)) for name, s in loaded_specs.items()}


@pytest.fixture(autouse=True)
def _jax_x64_is_restored():
    """A test that turns on JAX's float64 mode (a float64 backend, an update check) leaves it as it found it,
    so later tests keep JAX's float32 default whatever the order."""
    jax = sys.modules.get("jax")
    before = bool(jax.config.jax_enable_x64) if jax is not None else False
    yield
    jax = sys.modules.get("jax")
    if jax is not None and bool(jax.config.jax_enable_x64) != before:
        jax.config.update("jax_enable_x64", before)
