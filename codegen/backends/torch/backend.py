"""PyTorch backend: kernels in generated/torch/<family>.py, and generated/torch/functional.py (an
autograd.Function and a checked function per spec) and generated/torch/modules.py (an nn.Module per spec)."""

from batchform.codegen.backends.python.backend import python_backend
from batchform.codegen.backends.torch.idioms import TORCH_IDIOMS
from batchform.codegen.backends.torch.printer import TorchPrinter
from batchform.codegen.passes.kernel_passes import EAGER_SHARING

BACKEND = python_backend(
    "torch",
    "PyTorch",
    TorchPrinter,
    requires="torch",
    # Its intra-op thread pool is running once imported: the prover does not fork from such a process.
    fork_safe=False,
    # The wrappers: an autograd.Function (and a checked function) and an nn.Module per spec.
    wrappers=("functional.py", "modules.py"),
    # conventions.py: train/eval, loss reductions and state_dict interchange (hand-written glue, no equation).
    # cpp_ops.py: the C++ kernels as torch custom operators where built (glue, no equation).
    runtime={"conventions.py": "torch/conventions.py", "cpp_ops.py": "torch/cpp_ops.py"},
    array="Tensor",
    scalar="Scalar",
    # CSR weights as torch.sparse_csr_tensor: sparse.mm, dense @ CSR and sampled_addmm (no wrappers).
    # Before the printer: the shared maps of an eager backend, then addmm / addcmul / threshold_backward
    # chosen (idioms.py).
    passes=(EAGER_SHARING, TORCH_IDIOMS),
)
