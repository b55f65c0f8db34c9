"""The pipeline and the backend interface: one registry drives everything that lists backends, a backend
package registered at run time gets its files rendered, stamped and written through the interface alone,
and ``generate --check`` shows what differs as a unified diff."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import batchform.codegen.backends
from batchform.cli import main
from batchform.training.backends import make_backend
from batchform.codegen.backends import REGISTRY, all_backends
from batchform.codegen.backends.interface import Backend, PrintedFamily
from batchform.runtime.numpy.arrays import NumPyArrays
from batchform.codegen.backends.numpy.printer import NumPyPrinter
from batchform.codegen.load.loader import load_all
from batchform.codegen.pipeline import kernels_of
from batchform.codegen.pipeline import build, render_files
from batchform.codegen.output.writer import RECORD, write_tree

SPECS = [s for s in load_all() if s.family == "activations"]


@dataclass(frozen=True)
class ToyBackend(Backend):
    """Writes one text file listing every kernel and the first line of its printed body."""

    def files(self, families: list[PrintedFamily]) -> dict[str, str]:
        lines = [f"{k.kernel.name}: {k.body[0].strip()}" for family in families for k in family.kernels]
        return {"__init__.py": self.render("numpy/__init__.py.jinja", families=self.family_contexts(families),
                                           sources="spec/"),
                "kernels.txt": "\n".join(lines) + "\n"}


class ToyArrays(NumPyArrays):
    name = "toy"

    def array(self, a):
        return ("toy", np.asarray(a, dtype=self.dtype))


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """A backend package ``batchform.codegen.backends.toy`` (its backend), its runtime side
    ``batchform.runtime.toy`` (arrays and a runtime file) and its registry line."""
    package = types.ModuleType("batchform.codegen.backends.toy")
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "runtime.py").write_text('"""Hand-written, copied verbatim."""\n\nHELLO = 1\n')
    monkeypatch.setattr("batchform.codegen.backends.interface.BACKENDS", tmp_path)
    backend = types.ModuleType("batchform.codegen.backends.toy.backend")
    backend.BACKEND = ToyBackend(name="toy", title="Toy", printer=NumPyPrinter, family_template="",
                                 family_file="", runtime={"_runtime.py": "toy/runtime.py"})
    arrays = types.ModuleType("batchform.runtime.toy.arrays")
    arrays.ARRAYS = ToyArrays
    kernels = types.ModuleType("batchform.generated.toy")
    for name, module in {"batchform.codegen.backends.toy": package, "batchform.codegen.backends.toy.backend": backend,
                         "batchform.runtime.toy": types.ModuleType("batchform.runtime.toy"),
                         "batchform.runtime.toy.arrays": arrays, "batchform.generated.toy": kernels}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(batchform.codegen.backends, "REGISTRY", (*REGISTRY, "toy"))
    return backend.BACKEND


def test_the_registry_lists_the_backends_in_order():
    """Each entry is a package codegen/backends/<name>/ whose BACKEND has that name (NumPy, the reference that
    the other backends are checked against, first)."""
    assert REGISTRY[0] == "numpy" and len(set(REGISTRY)) == len(REGISTRY)
    assert list(all_backends()) == list(REGISTRY)
    assert [b.name for b in all_backends().values()] == list(REGISTRY)


def test_a_registered_backend_is_rendered_stamped_and_written_through_the_interface(toy, tmp_path):
    files = render_files(SPECS, {"toy": toy})
    kernels = [f for family in kernels_of(SPECS) for f in family.kernels]
    sparse = {f.spec for f in kernels if any(a.storage == "csr" for a in f.arguments)}
    listed = [line.split(":")[0] for line in files["toy/kernels.txt"].splitlines()]
    # every kernel but those of the sparse specs, which need a storage the toy backend does not take
    assert sparse and listed == [f.name for f in kernels if f.spec not in sparse] and "relu_backward" in listed
    # the printer's body, through files(): the NumPy printer's first line of relu's forward kernel
    relu = next(line for line in files["toy/kernels.txt"].splitlines() if line.startswith("relu:"))
    assert "X" in relu
    assert files["toy/_runtime.py"] == '"""Hand-written, copied verbatim."""\n\nHELLO = 1\n'
    assert '_check_generation(__name__, "' in files["toy/__init__.py"].replace("\n", "").replace("    ", "")
    assert "``generated.toy``" in files["__init__.py"]  # the top-level package names every registered backend
    out = tmp_path / "out"
    write_tree(files, out, backends=["toy", "__init__.py", "manifest.py"])
    assert (out / "toy" / "kernels.txt").read_text() == files["toy/kernels.txt"]
    assert (out / "toy" / "_runtime.py").is_file()


def test_the_pipeline_check_reports_a_backend_folder_that_is_missing(toy, tmp_path, monkeypatch):
    monkeypatch.setattr("batchform.codegen.load.loader.load_all", lambda: SPECS)
    result = build({"toy": toy}, output=tmp_path, check=True)
    assert "missing: toy/kernels.txt" in result.stale and result.proofs is None and result.written is None
    assert "+++ b/" in result.diff and "+relu: " in result.diff
    assert list(result.seconds) == ["load", "passes", "lower", "print", "render"]  # the stages, in order


def test_training_takes_its_backends_from_the_registry(toy):
    adapter = make_backend("toy", np.float64)
    assert isinstance(adapter, ToyArrays) and adapter.kernels is sys.modules["batchform.generated.toy"]
    assert adapter.array([[1.0]])[0] == "toy"
    with pytest.raises(Exception, match=f"choose from {', '.join(batchform.codegen.backends.REGISTRY)}$"):
        make_backend("nope")


def test_generate_backend_option_takes_a_registered_backend(toy, tmp_path, capsys):
    assert main(["generate", "--backend", "nope", "--check", "--output", str(tmp_path)]) == 2
    assert f"choose from {', '.join(batchform.codegen.backends.REGISTRY)}" in capsys.readouterr().err
    assert batchform.codegen.backends.REGISTRY[-1] == "toy"


def test_check_prints_a_unified_diff_of_a_stale_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("batchform.codegen.load.loader.load_all", lambda: SPECS)
    files = render_files(SPECS, {"numpy": all_backends()["numpy"]})
    write_tree(files, tmp_path, backends=["numpy", "__init__.py", "manifest.py"])
    args = ["generate", "--check", "--backend", "numpy", "--output", str(tmp_path)]
    assert main(args) == 0
    (tmp_path / "numpy" / "stray.py").write_text("x = 1\n")
    assert main(args) == 0  # a file batchform did not write is not generated output: never stale
    record = tmp_path / RECORD  # one it wrote (in its record) and no longer renders is
    record.write_text(record.read_text() + "numpy/stray.py\n")
    target = tmp_path / "numpy" / "activations.py"
    text = target.read_text()
    target.write_text(text.replace("def relu(", "def relu_renamed(", 1))
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"--- a/{tmp_path.name}/numpy/activations.py\n+++ b/{tmp_path.name}/numpy/activations.py\n" in err
    assert "\n-def relu_renamed(" in err and "\n+def relu(" in err
    assert f"--- a/{tmp_path.name}/numpy/stray.py" in err and "\n-x = 1\n" in err
    assert "stale: changed: numpy/activations.py" in err and "stale: extra: numpy/stray.py" in err


def test_runtime_code_is_hand_written_once_and_copied_verbatim():
    from batchform.codegen.backends.interface import BACKENDS
    from batchform.codegen.output.template_lookup import TEMPLATE_FOLDERS, TEMPLATES

    generated = Path(batchform.codegen.__file__).parent.parent / "generated"
    copies = {(b.name, target): source for b in all_backends().values() for target, source in b.runtime.items()}
    assert {("torch", "_framework.py"), ("jax", "_framework.py"), ("numpy", "csr.py"), ("cpp", "_checks.py")} \
        <= set(copies)
    assert {name for name, target in copies if target == "_runtime.py"} == set(REGISTRY)
    for (name, target), source in copies.items():
        assert (generated / name / target).read_bytes() == (BACKENDS / source).read_bytes()
    # the argument checks (none raises in a template) and the fan-in initializer are in no template
    text = "".join(p.read_text() for folder in [TEMPLATES, *TEMPLATE_FOLDERS.values()] for p in folder.rglob("*.jinja"))
    for runtime_code in ("def check(", "def expected_shapes(", "def wrong_shapes(", "def check_csr(",
                         "def check_arrays(", "raise TypeError", "raise ValueError", "sqrt", "uniform_("):
        assert runtime_code not in text, runtime_code


def test_every_fan_in_initializer_draws_within_the_one_bound():
    import jax
    import torch

    from batchform.runtime.python_runtime import fan_in_bound
    from batchform.generated.jax.custom_vjp import linear_init
    from batchform.generated.torch.modules import Linear

    D, K, bound = 9, 4, fan_in_bound(9)
    assert bound == pytest.approx(1 / 3)
    W = Linear(D, K, dtype=torch.float64).W.detach().numpy()
    assert W.shape == (K, D) and 0.5 * bound < np.abs(W).max() <= bound
    W = np.asarray(linear_init(jax.random.PRNGKey(0), D, K)["W"])
    assert W.shape == (K, D) and 0.5 * bound < np.abs(W).max() <= bound
    assert fan_in_bound(0) == 0.0  # a matrix without columns has nothing to divide by
