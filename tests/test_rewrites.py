"""One string-table test per rewrite rule: spec expression → generated NumPy expression."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sympy

from batchform.codegen.ir.freeze import freeze
from batchform.codegen.ir.nodes import Var, walk
from batchform.codegen.lower.lower import Argument, Kernel, _bind_dims
from batchform.codegen.passes.cse import eliminate_common_subexpressions
from batchform.codegen.passes.fusion import fuse
from batchform.codegen.passes.idioms import stable_forms
from batchform.codegen.passes.rules import rewrite
from batchform.codegen.backends.numpy.printer import NumPyPrinter
from batchform.dsl import (apply, column_repeat, columns_sum, diag, dims, elements_sum, exp, hadamard, identity, log, matrix,
                      ones, reciprocal, row_repeat, rows_max, rows_sum, sigmoid, x)

N, D, K = dims("N D K")
X, W, b = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K)
A, B, Z, DY = matrix("A", N, K), matrix("B", N, K), matrix("Z", N, K), matrix("DY", N, K)


def printed(expr) -> str:
    node = stable_forms(fuse(rewrite(freeze(expr))))  # the passes, as codegen.passes.schedule.optimize runs them
    arguments = [Argument(v.name, v.shape) for v in {n for n in walk(node) if isinstance(n, Var)}]
    f = Kernel("f", "", [], "", "", arguments, [("Y", node)], ["Y"], [node.shape],
               dims=_bind_dims(arguments, [node]))
    lines = NumPyPrinter(f).body()
    return "\n".join(line for line in lines[len(f.dims):-1])  # without the dimension bindings and return


TABLE = [
    ("1_N·b is a broadcast", X * W.T + row_repeat(b, N), "Y = X @ W.T + b"),
    ("1ᵀX is a column sum", columns_sum(DY), "Y = DY.sum(axis=0, keepdims=True)"),
    ("X·1 is a row sum", rows_sum(DY), "Y = DY.sum(axis=1, keepdims=True)"),
    ("1ᵀX1 is a scalar sum", elements_sum(hadamard(A, B)), "Y = (A*B).sum()"),
    ("diag(AᵀB) is a column sum of A ⊙ B", diag(A.T * B).T, "Y = (A*B).sum(axis=0, keepdims=True)"),
    ("diag(A·Bᵀ) is a row sum of A ⊙ B", diag(A * B.T), "Y = (A*B).sum(axis=1, keepdims=True)"),
    ("(N·I − 11ᵀ)·X is N·X minus a broadcast column sum", (N * identity(N) - ones(N) * ones(N).T) * DY,
     "Y = N*DY - DY.sum(axis=0, keepdims=True)"),
    ("Z·1_K·1_Kᵀ is a broadcast row sum", hadamard(A, Z * ones(K) * ones(K).T),
     "Y = A*Z.sum(axis=1, keepdims=True)"),
    ("x·1ᵀ broadcasts a column", hadamard(A, column_repeat(reciprocal(rows_sum(exp(Z))), K)),
     "Y = A/np.exp(Z).sum(axis=1, keepdims=True)"),
    ("1_N·1_Nᵀ·X/N is a broadcast mean", X - ones(N) * ones(N).T * X / N,
     "Y = X - X.sum(axis=0, keepdims=True)/N"),
    ("rows_max", Z - column_repeat(rows_max(Z), K), "Y = Z - Z.max(axis=1, keepdims=True)"),
    ("sigmoid is printed stably", sigmoid(Z), "Y = scipy.special.expit(Z)"),
    ("log(1 + e^x) is logaddexp", log(ones(N) * ones(K).T + exp(Z)), "Y = np.logaddexp(0, Z)"),
    ("sinh/cosh is tanh (no inf/inf)", apply(sympy.sinh(x) / (2 * sympy.cosh(x)), Z, "f"), "Y = np.tanh(Z)/2"),
]


@pytest.mark.parametrize("title, expr, expected", TABLE, ids=[t[0] for t in TABLE])
def test_rewrite(title, expr, expected):
    assert printed(expr) == expected


def test_common_subexpressions_are_computed_once():
    from batchform.spec.softmax import stable_softmax
    node = rewrite(freeze(stable_softmax(Z)))
    statements = eliminate_common_subexpressions([("Y", node)])
    assert [name for name, _ in statements] == ["t0", "Y"]


GENERATED = Path(__file__).resolve().parent.parent / "generated"


@pytest.mark.parametrize("path", sorted((GENERATED / "numpy").glob("*.py")), ids=lambda p: p.name)
def test_no_quadratic_temporaries(path):
    """No N×N or K×K matrix is ever built: no identity, no matrix of ones, no diagonal of a product."""
    text = path.read_text()
    for forbidden in ("np.eye", "np.ones", "np.diagonal", "np.diagflat", "np.full"):
        assert forbidden not in text, f"{path.name} uses {forbidden}"
    assert not re.search(r"@ [A-Za-z_]+\.T\)\.sum|np\.diag\(", text)


def test_the_stable_forms_are_a_pass_and_no_printer_applies_them():
    """σ is recognized once, by the passes: a printer given the raw form prints it as written."""
    raw = fuse(rewrite(freeze(sigmoid(Z))))
    f = Kernel("f", "", [], "", "", [Argument("Z", tuple(Z.shape))], [("Y", raw)], ["Y"], [raw.shape])
    assert "np.exp" in NumPyPrinter(f).body()[-2]
    assert "scipy.special.expit" in printed(sigmoid(Z))
