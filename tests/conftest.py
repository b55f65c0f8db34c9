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


# --- the order of the suite (pytest-xdist: `make test` runs `pytest -n auto --dist loadfile`: a file per worker) ---

#: The files of the slow tests, longest first (measured: `pytest --durations`): under xdist a worker takes the
#: next file when it finishes one, so the longest must start first or it runs alone at the end.
SLOWEST_FIRST = ("test_docs_site.py", "test_wheel_extras.py", "test_user_project.py", "test_cpp_sanitizers.py",
                 "test_docs_code.py", "test_derive.py", "test_wheel.py", "test_bench_smoke.py",
                 "test_distributed_examples.py")


def pytest_collection_modifyitems(config, items):
    """The tests marked ``slow`` (minutes of subprocesses: wheels, fresh venvs, compiles, the docs site) first,
    longest first, so that under xdist they start at once and the quick tests fill the other cores around them,
    instead of one of them running alone at the end; otherwise the files' order."""
    def order(item):
        if item.get_closest_marker("slow") is None:
            return (1, 0)
        name = item.path.name
        return (0, SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST))

    items.sort(key=order)


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory):
    """batchform's wheel, built once per test process from a copy of the checkout (no build isolation, no
    network): tests/test_wheel.py and tests/test_wheel_extras.py install it into their fresh venvs."""
    import shutil
    import subprocess

    from test_wheel import _NOT_SOURCES, REPO

    tmp = tmp_path_factory.mktemp("wheel-build")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCES)  # build from a copy: the checkout stays as it is
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "-q", "-w", str(tmp / "dist"), str(source)], cwd=tmp, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp / "dist").glob("batchform-*.whl")
    return wheel
