"""A sparse parameter's gradient that is a multiple of the sampled product, c·(DZᵀ·X) on W's pattern (a scaled
sparse layer, or a broken equation whose proof should be what reports it): printed as the sampled product,
then scaled, in every backend; the Python backends run against SymPy's values of the equation."""

from __future__ import annotations

from dataclasses import replace

import pytest
from batchform.codegen.verify import execute
from batchform.codegen.load import loader
from batchform.codegen import pipeline
from batchform.codegen.backends import all_backends
from batchform.codegen.load.loader import check
from batchform.codegen.lower.families import by_spec
from batchform.codegen.pipeline import kernels_of


def scaled(factor):
    """sparse_linear with DW multiplied by ``factor`` (a number or an expression in the dimensions)."""
    specs = {s.name: s for s in loader.load_all()}
    base = specs["sparse_linear"]
    backward = tuple(replace(e, expr=factor(e.expr) if e.name == "DW" else e.expr) for e in base.spec.backward)
    return check(replace(base.spec, backward=backward), base.family, base.path), specs["linear"]


@pytest.mark.parametrize("name", ["negated", "by 3/2"])
def test_a_scaled_sparse_gradient_prints_and_runs_in_every_backend(name):
    factor = {"negated": lambda e: -e, "by 3/2": lambda e: 3 * e / 2}[name]
    specs = list(scaled(factor))
    groups = kernels_of(specs)
    files = pipeline.render_files(specs, all_backends(), groups)
    numpy_text = files["numpy/layers.py"]
    assert ("DW = -DW" if name == "negated" else "DW = (3 / 2) * DW") in numpy_text
    execute.check_files(files, specs, by_spec(groups), [n for n, b in all_backends().items() if b.importable])
    # C++: the scaling after the sampled product (the one-program check harness takes no CSR inputs, so the
    # C++ sparse kernels run only in a built module: tests/test_cpp_sparse.py for the built-in forms)
    cpp = files["cpp/layers_linear.hpp"]
    kernel = cpp[cpp.index("sparse_linear_backward(const"):]
    sampled = kernel.index("sampled_matmul<S>(")
    assert kernel.index("DW.array() *= " + ("S(-1)" if name == "negated" else "S(3) / S(2)"), sampled) > sampled
