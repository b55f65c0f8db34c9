"""PyTorch backend: kernels in generated/torch/<family>.py, and generated/torch/functional.py (an
autograd.Function and a checked function per spec) and generated/torch/modules.py (an nn.Module per spec)."""

from batchform.codegen.backends.python.backend import PythonBackend
from batchform.codegen.backends.torch.idioms import TORCH_IDIOMS
from batchform.codegen.backends.torch.printer import TorchPrinter
from batchform.codegen.passes.kernel_passes import EAGER_SHARING

BACKEND = PythonBackend(
    name="torch",
    title="PyTorch",
    requires="torch",
    printer=TorchPrinter,
    family_template="torch/module.py.jinja",
    # The wrappers: an autograd.Function (and a checked function) and an nn.Module per spec.
    package_templates={
        "torch/__init__.py.jinja": "__init__.py",
        "torch/functional.py.jinja": "functional.py",
        "torch/modules.py.jinja": "modules.py",
    },
    # Hand-written, copied verbatim: the shape rule, the CSR checks (and the wrappers' checks, initializers).
    # conventions.py: train/eval, loss reductions and state_dict interchange (hand-written glue, no equation).
    runtime={"_runtime.py": "python_runtime.py", "_framework.py": "torch/runtime.py",
             "csr.py": "torch/csr_runtime.py", "conventions.py": "torch/conventions.py",
             # cpp_ops.py: the C++ kernels as torch custom operators where built (glue, no equation).
             "cpp_ops.py": "torch/cpp_ops.py"},
    wrapped=True,
    array="Tensor",
    scalar="Scalar",
    # CSR weights as torch.sparse_csr_tensor: sparse.mm, dense @ CSR and sampled_addmm (no wrappers).
    storages=("dense", "csr"),
    # Before the printer: the shared maps of an eager backend, then addmm / addcmul chosen (idioms.py).
    passes=(EAGER_SHARING, TORCH_IDIOMS),
)
