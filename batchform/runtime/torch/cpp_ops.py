# The generated C++ kernels as PyTorch custom operators, copied verbatim into generated/torch/cpp_ops.py.
# Do not edit the copy: edit batchform/runtime/torch/cpp_ops.py and run `make generate`.
"""The generated C++ kernels as PyTorch custom operators: hand-written glue, no equation.

When the C++ module (``generated/cpp``) is built and current, every kernel of :data:`SPECS` (batch
normalization's forward, backward, inference and running-statistics kernels) is registered as the operator
``torch.ops.batchform.<kernel>``, and the generated autograd Functions and modules (``functional``,
``modules``) run it in place of the generated PyTorch kernel of the same name where it applies (see
:func:`prefer_cpp`). Otherwise — the C++ module not built, built from older sources, or
``BATCHFORM_TORCH_CPP=0`` — nothing is registered and the generated PyTorch kernels run, as before.

Each operator has, from the tables the generator writes (``generated/manifest.py`` and the C++ package's
argument kinds), no equation of its own:

* its CPU implementation: the C++ kernel on the tensors' memory (NumPy views, no copy);
* a fake (meta) implementation: the generated PyTorch kernel of the same name, run on fake tensors, so that
  ``torch.compile`` and ``torch.export`` trace through it with the right output shapes;
* for a forward kernel, an autograd formula (``torch.library.register_autograd``): the spec's backward C++
  kernel, its arguments gathered by name from the forward's arguments and results, as the generated autograd
  Function does. Only the spec's output (``Y``) is differentiable; the intermediate results (``Sigma``,
  ``Z``) are marked non-differentiable. Double backward is not registered: the autograd Functions of
  ``functional`` run the generated PyTorch kernels (differentiable) when the gradient is itself recorded.
  ``torch.func`` transforms work over the modules and functional forms (their autograd Functions call these
  operators on plain tensors); over a bare forward operator PyTorch 2.13 refuses them.

Why batch normalization only: its PyTorch form is eleven ATen operations over the N × K batch against
``nn.BatchNorm1d``'s one fused kernel (bench/results.md: 0.65×), where the C++ kernel reads the batch in a few
fused passes. The other layers' PyTorch kernels are dominated by one GEMM each; they were not measured
through these operators, so they stay as they are.
"""

from __future__ import annotations

import os
import re
from importlib import import_module
from types import SimpleNamespace

import torch

#: ``torch.ops.batchform`` for the built-in kernels; a package generated elsewhere (``generate --out``) gets
#: its own namespace, named after it, so that its kernels never take the built-in ones' names.
NAMESPACE = "batchform" if __package__ == "batchform.generated.torch" else "batchform_" + re.sub(r"\W", "_", __package__)
#: The specs whose kernels run in C++ (with their inference and statistics specs): every spec with running
#: statistics, i.e. the batch normalizations.
SPECS: tuple[str, ...] = ()
#: Why the C++ operators are not in use ("" when they are).
UNAVAILABLE = ""
_OPS: dict[str, object] = {}  # kernel name -> torch.ops.batchform.<kernel>
_UPDATED: dict[str, set[int]] = {}  # kernel name -> the positions of the arguments it updates in place
_FLOATS = (torch.float32, torch.float64)


def _load():
    """(the C++ package, the manifest) or raises ImportError saying why not."""
    if os.environ.get("BATCHFORM_TORCH_CPP", "1") == "0":
        raise ImportError("BATCHFORM_TORCH_CPP=0")
    cpp = import_module("..cpp", __package__)
    manifest = import_module("..manifest", __package__)
    return cpp, manifest


def _schema(signature: tuple, returns: int) -> str:
    """The operator schema of a C++ kernel: tensors, floats for scalars, ``Tensor(a!)`` for updated arrays."""
    arguments, alias = [], iter("abcdefghijklmnopqrstuvwxyz")
    for argument, _shape, kind in signature:
        if kind == "scalar":
            arguments.append(f"float {argument}")
        elif kind == "updated":
            arguments.append(f"Tensor({next(alias)}!) {argument}")
        else:
            arguments.append(f"Tensor {argument}")
    results = "()" if returns == 0 else "Tensor" if returns == 1 else f"({', '.join(['Tensor'] * returns)})"
    return f"({', '.join(arguments)}) -> {results}"


def _cpu_implementation(kernel, signature: tuple, returns: int):
    def run(*args):
        arrays = [a.detach().numpy() if kind != "scalar" else a for a, (_, _, kind) in zip(args, signature)]
        result = kernel(*arrays)
        if returns == 0:
            return None
        if returns == 1:
            return torch.from_numpy(result)
        return tuple(torch.from_numpy(r) for r in result)

    return run


def _fake_implementation(torch_kernel, returns: int):
    def fake(*args):
        result = torch_kernel(*args)
        if returns == 0:
            return None
        # Fresh tensors (an operator's outputs never alias its inputs or each other).
        return result.clone() if returns == 1 else tuple(r.clone() for r in result)

    return fake


def _register_autograd(op, forward, backward, without_dx, scalars: set[str]) -> None:
    """The spec's backward kernel as the forward operator's autograd formula."""
    differentiable = forward.returns[-1]  # the spec's output; the others are intermediate results

    def setup_context(ctx, inputs, output):
        outputs = output if isinstance(output, tuple) else (output,)
        ctx.values = {**dict(zip(forward.arguments, inputs)), **dict(zip(forward.returns, outputs))}
        ctx.mark_non_differentiable(*[v for n, v in zip(forward.returns, outputs) if n != differentiable])
        ctx.set_materialize_grads(False)  # no N × K zeros for the intermediate results' (absent) gradients

    def backward_formula(ctx, *grads):
        needs = dict(zip(forward.arguments, ctx.needs_input_grad))
        if grads[-1] is None:
            return tuple(None for _ in forward.arguments)
        values = dict(ctx.values)
        values[f"D{differentiable}"] = grads[-1].contiguous()
        kernel = without_dx if (without_dx is not None and not needs.get("X", True)) else backward
        results = _OPS[kernel.name](*[values[a] for a in kernel.arguments])
        results = dict(zip(kernel.returns, results if isinstance(results, tuple) else (results,)))
        return tuple(None if a in scalars or not needs[a] else results.get(f"D{a}") for a in forward.arguments)

    torch.library.register_autograd(op, backward_formula, setup_context=setup_context)


def _register(cpp, manifest, torch_kernels: dict) -> tuple[str, ...]:
    specs = [info for info in manifest.SPECS.values() if info.running]
    names = {s.name for s in specs}
    for info in specs:
        names.update((info.running["inference"], info.running["update"]))
    kernels = {k.name: k for name in sorted(names) for k in manifest.SPECS[name].kernels}
    namespace = getattr(torch.ops, NAMESPACE)
    if all(hasattr(namespace, name) for name in kernels):  # registered by an earlier import of this module
        for name in kernels:
            _OPS[name] = getattr(namespace, name)
            _UPDATED[name] = {i for i, (_, _, kind) in enumerate(cpp._SIGNATURES[name]) if kind == "updated"}
        return tuple(sorted(names))
    for name, k in kernels.items():
        signature = cpp._SIGNATURES[name]
        qualified = f"{NAMESPACE}::{name}"
        updated = {i for i, (_, _, kind) in enumerate(signature) if kind == "updated"}
        returns = 0 if updated else len(k.returns)  # an update changes its arguments and returns nothing
        torch.library.define(qualified, _schema(signature, returns))
        _UPDATED[name] = updated
        torch.library.impl(qualified, "CPU")(_cpu_implementation(getattr(cpp, name), signature, returns))
        torch.library.register_fake(qualified)(_fake_implementation(torch_kernels[name], returns))
        _OPS[name] = getattr(namespace, name)
    for name in sorted(names):
        info = manifest.SPECS[name]
        if len(info.kernels) < 2 or any(kind == "updated" for _, _, kind in cpp._SIGNATURES[info.kernels[0].name]):
            continue
        without_dx = info.kernels[2] if len(info.kernels) > 2 else None
        _register_autograd(f"{NAMESPACE}::{info.kernels[0].name}", info.kernels[0], info.kernels[1], without_dx,
                           set(info.hyperparameters))
    return tuple(sorted(names))


def _torch_kernels() -> dict:
    layers = import_module(".layers", __package__)
    return {name: getattr(layers, name) for name in dir(layers) if not name.startswith("_")}


try:
    SPECS = _register(*_load(), _torch_kernels())
except ImportError as error:  # the C++ module not built or stale, or turned off: the PyTorch kernels run
    UNAVAILABLE = str(error)


def _plain(value) -> bool:
    """A tensor the C++ kernel can read in place: CPU, float32/float64, not a functorch wrapper (vmap's
    batched tensors run the PyTorch kernel)."""
    return (value.device.type == "cpu" and value.dtype in _FLOATS
            and (torch.compiler.is_compiling() or not torch._C._functorch.is_functorch_wrapped_tensor(value)))


def _applies(args, updated: set[int]) -> bool:
    if torch.is_grad_enabled() and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
        return False  # recorded for a gradient (double backward): the differentiable PyTorch kernel
    dtype = None
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            if not _plain(a) or (dtype is not None and a.dtype != dtype):
                return False
            if i in updated and not a.is_contiguous():
                return False  # updated in place: a contiguous copy would lose the update
            dtype = a.dtype
        elif not isinstance(a, (int, float)) or isinstance(a, bool):
            return False
    return True


def _dispatcher(name: str, torch_kernel):
    op, updated = _OPS[name], _UPDATED[name]

    def kernel(*args):
        if _applies(args, updated):
            return op(*[a.contiguous() if isinstance(a, torch.Tensor) else a for a in args])
        return torch_kernel(*args)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = torch_kernel.__doc__
    return kernel


def prefer_cpp(module):
    """``module`` (a generated PyTorch kernel module) with each kernel that has a C++ operator replaced by a
    function that runs the operator when its arguments allow (CPU float32/float64 tensors of one dtype, plain
    float hyperparameters, nothing recorded for a gradient, no vmap) and the PyTorch kernel otherwise. Without
    the C++ operators, ``module`` itself."""
    if not _OPS or not any(hasattr(module, name) for name in _OPS):
        return module
    kernels = {name: getattr(module, name) for name in dir(module) if not name.startswith("__")}
    for name in _OPS:
        if name in kernels:
            kernels[name] = _dispatcher(name, kernels[name])
    return SimpleNamespace(**kernels)
