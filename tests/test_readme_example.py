"""The README's ten-line layer is proved and generated, and the kernel the README shows is the one batchform
generates from it, byte for byte (but for the spec's path in its docstring), and computes the derivative."""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path

import numpy as np
from batchform.codegen.backends import all_backends
from batchform.codegen.load.loader import load_all
from batchform.codegen.pipeline import render_files
from batchform.codegen.verify.proof import prove_spec

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _blocks() -> tuple[str, str, str]:
    spec = re.search(r"```python\n# (myspecs/[\w/]+\.py)\n(.*?)```", README, re.DOTALL)
    kernel = re.search(r"```python\n(def \w+\(.*?)```", README, re.DOTALL)
    assert spec and kernel, "the README's example (a spec file and its generated kernel) is missing"
    return spec.group(1), spec.group(2), kernel.group(1)


def test_the_readme_layer_is_proved_and_its_kernel_is_the_generated_one(tmp_path):
    path, code, shown = _blocks()
    assert len(code.strip().splitlines()) <= 10
    family, module = Path(path).parts[1], Path(path).stem
    root = tmp_path / "readme_specs"
    (root / family).mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / family / "__init__.py").write_text('"""Example family."""\n')
    (root / family / f"{module}.py").write_text(code)
    sys.path.insert(0, str(tmp_path))
    try:
        specs = load_all(importlib.import_module("readme_specs"))
    finally:
        sys.path.remove(str(tmp_path))
    assert len(specs) == 4  # the function, the layer, its dropout form and its sparse (CSR) form
    assert sum(len(s.spec.backward) for s in specs) == 13  # "all 13 backward equations"
    for loaded in specs:
        proof = prove_spec(loaded)
        assert proof.ok, proof.failures()
    source = render_files(specs, {"numpy": all_backends()["numpy"]})[f"numpy/{family}.py"]
    name = re.match(r"def (\w+)\(", shown).group(1)
    generated = re.search(rf"^def {name}\(.*?(?=^\S)", source, re.DOTALL | re.MULTILINE).group(0).rstrip() + "\n"
    generated = re.sub(r"From \S+ \(", f"From {path} (", generated)
    assert generated == shown
    namespace = types.ModuleType("readme_generated")
    namespace.__package__ = "batchform.generated.numpy"  # its sparse kernels import the package's CSR check
    exec(compile(source, "readme_generated", "exec"), namespace.__dict__)  # noqa: S102 - the generated module
    X = np.random.default_rng(0).uniform(-2, 2, (4, 3))
    h = 1e-6
    numeric = (namespace.softsign(X + h) - namespace.softsign(X - h)) / (2 * h)
    np.testing.assert_allclose(getattr(namespace, name)(X, np.ones_like(X)), numeric, rtol=1e-6)
