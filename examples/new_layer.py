"""A new layer in your own project: write its spec, generate it into your own folder, call it.

    python examples/new_layer.py [WORKDIR]

Writes a spec folder WORKDIR/myspecs/ with a softsign activation, f(x) = x / (1 + |x|), f′(x) = 1 / (1 + |x|)²,
runs ``batchform.generate(specs=[WORKDIR/myspecs], out=WORKDIR/mykernels, backends=["numpy"])`` — which
proves f′ and every backward equation and runs the generated kernels against SymPy before writing them —
and imports the generated package on its own. The same from the shell:
``batchform generate --specs WORKDIR/myspecs --out WORKDIR/mykernels --backend numpy``.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

import batchform

SPEC = '''\
"""Softsign: softsign(x) = x / (1 + |x|)."""
from sympy import Abs

from batchform.dsl import Activation, activation_specs, x

softsign = Activation(
    "softsign", "Softsign",
    f=x / (1 + Abs(x)),
    df=1 / (1 + Abs(x)) ** 2,
)

# The element-wise function and the layer; activation_specs also gives the dropout and sparse (CSR) forms,
# left out here only so that the example proves in seconds.
SPECS = [s for s in activation_specs(softsign) if s.name in ("softsign", "softsign_layer")]
'''


def main(argv=None) -> np.ndarray:
    argv = sys.argv[1:] if argv is None else argv
    work = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="batchform-example-"))
    family = work / "myspecs" / "activations"
    family.mkdir(parents=True, exist_ok=True)
    (family / "__init__.py").write_text('"""My activations."""\n')
    (family / "softsign.py").write_text(textwrap.dedent(SPEC))
    written = batchform.generate(specs=[work / "myspecs"], out=work / "mykernels", backends=["numpy"])
    print(f"generated {len(written)} files in {work / 'mykernels'}")

    sys.path.insert(0, str(work))  # the generated package imports on its own, from wherever it was written
    kernels = importlib.import_module("mykernels.numpy")
    rng = np.random.default_rng(0)
    X, W, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)), rng.normal(size=(1, 4))
    Z, Y = kernels.softsign_layer_forward(X, W, b)
    DW, Db, DX = kernels.softsign_layer_backward(X, W, Z, np.ones_like(Y))
    expected = X @ W.T + b
    assert np.allclose(Y, expected / (1 + np.abs(expected)))
    print("softsign_layer_forward(X, W, b) =\n", np.round(Y, 4))
    return DX


if __name__ == "__main__":
    main()
