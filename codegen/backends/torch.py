"""PyTorch backend: kernels in generated/torch/<family>.py, and generated/torch/functional.py (an
autograd.Function and a checked function per spec) and generated/torch/modules.py (an nn.Module per spec)."""

from codegen.backends import Backend
from codegen.format import ruff
from codegen.printers.torch import TorchPrinter
from codegen.render import python_annotations
from codegen.wrappers import render_wrappers

BACKEND = Backend(
    name="torch",
    title="PyTorch",
    printer=TorchPrinter,
    family_template="torch/module.py.jinja",
    family_file="{family}.py",
    annotate=python_annotations(array="Tensor", scalar="Scalar"),
    formatter=ruff,
    # The wrappers: an autograd.Function (and a checked function) and an nn.Module per spec.
    extra=render_wrappers("torch", {
        "torch/__init__.py.jinja": "__init__.py",
        "torch/functional.py.jinja": "functional.py",
        "torch/modules.py.jinja": "modules.py",
        "torch/csr.py.jinja": "csr.py",
        "torch/conventions.py.jinja": "conventions.py",  # hand-written train/eval and interchange glue
    }),
    order=1,
    # CSR weights as torch.sparse_csr_tensor: sparse.mm, dense @ CSR and sampled_addmm (no wrappers).
    storages=("dense", "csr"),
)
