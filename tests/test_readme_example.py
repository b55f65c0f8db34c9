"""The README's worked example (a new activation in one spec file) works end to end, as written."""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path

import numpy as np

from batchform.codegen.backends import all_backends
from batchform.codegen.load.loader import load_all
from batchform.codegen.lower.lower import lower
from batchform.codegen.passes.schedule import optimize
from batchform.codegen.pipeline import render_files
from batchform.codegen.verify.proof import prove_spec

README = Path(__file__).resolve().parent.parent / "README.md"


def _example() -> tuple[str, str]:
    text = README.read_text()
    match = re.search(r"Create\s+`(spec/[\w/]+\.py)`:\s*```python\n(.*?)```", text, re.S)
    assert match, "the README's worked example is missing"
    return match.group(1), match.group(2)


def test_readme_example_is_proved_generated_and_correct(tmp_path):
    path, code = _example()
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
    assert [s.name for s in specs if s.spec.storage] == [f"sparse_{specs[0].name}_layer"]
    for loaded in specs:
        proof = prove_spec(loaded)
        assert proof.ok, proof.failures()
    files = render_files(specs, {"numpy": all_backends()["numpy"]})
    source = files[f"numpy/{family}.py"]
    generated = types.ModuleType("readme_generated")
    generated.__package__ = "batchform.generated.numpy"  # its sparse kernels import the package's CSR check
    exec(compile(source, "readme_generated", "exec"), generated.__dict__)
    name = specs[0].name
    forward, backward = lower(optimize(specs[0]))
    X = np.random.default_rng(0).uniform(-2, 2, (4, 3))
    Y = getattr(generated, forward.name)(X)
    DX = getattr(generated, backward.name)(X, np.ones_like(X))
    h = 1e-6
    numeric = (getattr(generated, forward.name)(X + h) - getattr(generated, forward.name)(X - h)) / (2 * h)
    np.testing.assert_allclose(DX, numeric, rtol=1e-6)
    assert Y.shape == X.shape and name in source
