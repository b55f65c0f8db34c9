"""What the framework wrappers of a spec are made of, decided once for every framework.

A layer, function or loss spec lowers to a forward and a backward :class:`~codegen.lower.lower.Kernel`; this
module pairs them and derives everything a framework wrapper (a ``torch.autograd.Function`` and
``nn.Module``, a ``jax.custom_vjp``) needs: its arguments, what forward saves for backward, which argument
each returned gradient belongs to, the shapes to check at call time, the constructor of a module. Templates
under ``templates/<framework>/`` only lay these out; no equation is written here or there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from batchform.codegen.errors import SpecError
from batchform.codegen.lower.lower import Argument, Kernel

#: Class names of spec names' words where plain capitalization would misspell them.
WORDS = {"relu": "ReLU", "srelu": "SReLU", "silu": "SiLU", "gelu": "GELU", "elu": "ELU", "selu": "SELU"}

def class_name(spec_name: str) -> str:
    """``relu_layer`` → ``ReLULayer``, ``batch_norm_eps`` → ``BatchNormEps``."""
    return "".join(WORDS.get(word, word.capitalize()) for word in spec_name.split("_"))


def _dim(d) -> str | int:
    d = sympy.sympify(d)
    if d.is_Integer:
        return int(d)
    if isinstance(d, sympy.Symbol):
        return d.name
    raise SpecError(f"a wrapper can only check dimensions that are symbols or integers, not {d}")


@dataclass
class Check:
    """One argument checked at call time: its expected shape, dimensions named by their symbol."""

    name: str
    shape: tuple  # () for a scalar parameter; else a pair of ints and dimension names


@dataclass
class Parameter:
    name: str
    shape: tuple  # as in Check
    #: The spec's init (codegen.lower.lower.initial_values): "fan_in", drawn from U(−b, b) with b = 1/√columns by
    #: the runtime's initializer (batchform/runtime/python_runtime.py: fan_in_bound), or a constant.
    init: float | str


@dataclass
class Dimension:
    """A constructor argument of a module: a dimension its parameters have, and where it shows."""

    name: str
    where: str  # e.g. "the number of columns of X and W, rows of R"


@dataclass
class Running:
    """A layer's running statistics: the update kernel (``<layer>_statistics_update``) and its module, the
    inference-mode wrapper, each statistic's shape and initial value, and the default momentum."""

    update: Kernel
    update_family: str
    inference: Wrapper
    shapes: dict  # statistic → shape, as in Check
    initial: dict
    momentum: float

    @property
    def statistics(self) -> list[str]:
        return list(self.initial)


@dataclass
class Wrapper:
    spec: str
    kind: str  # layer, function or loss
    class_name: str
    summary: str
    path: str
    forward: Kernel
    backward: Kernel
    arguments: list[Argument]  # inputs, parameters and hyperparameters, in the forward kernel's order
    roles: dict  # argument name → input, parameter or hyperparameter
    output: str  # the forward value a wrapper returns
    forward_returns: list[str]  # what the forward kernel returns, in order
    saved: list[str]  # arrays forward keeps for backward (inputs, parameters, forward values)
    saved_scalars: list[str]  # hyperparameters backward needs
    gradient_returns: list[str]  # what the backward kernel returns, in order
    gradients: list[str | None]  # per argument: the name of its gradient, or None
    checks: list[Check]  # parameters first (they fix the layer's size), then inputs
    parameters: list[Parameter]
    dimensions: list[Dimension]
    inputs: list[str]
    hyperparameters: list[str]
    seed: str  # the name of the incoming gradient: DY, or DL for a loss
    equations: list[str] = field(default_factory=list)
    #: The backward kernel without the gradients of the inputs, for when no input needs one (the first
    #: layer of a network: no DX); None where that would leave nothing or change nothing.
    backward_without_inputs: Kernel | None = None
    family: str = ""  # the spec/ sub-package, i.e. the kernel module under generated/<backend>/
    #: Train/eval: for a layer with running statistics, its :class:`Running`; for a dropout form, the wrapper
    #: of the layer without the mask (eval mode) and the mask's name; for a classification loss, "classes".
    running: Running | None = None
    dropout: Wrapper | None = None
    mask: str = ""
    targets: str = ""

    @property
    def output_index(self) -> int | None:
        """Where the output is among the forward kernel's returns; None when it returns the output alone."""
        return None if len(self.forward_returns) == 1 else self.forward_returns.index(self.output)

    @property
    def intermediates(self) -> list[str]:
        """Forward values returned besides the output (kept for backward, not differentiable)."""
        return [r for r in self.forward_returns if r != self.output]

    @property
    def array_arguments(self) -> list[str]:
        """Arguments that are arrays (inputs and parameters; hyperparameters are numbers)."""
        return [a.name for a in self.arguments if self.roles[a.name] != "hyperparameter"]

    @property
    def mask_shape(self) -> list[str]:
        """A dropout mask's shape as expressions of the other arguments: ``["W.shape[1]", "W.shape[0]"]``."""
        shape = next(c.shape for c in self.checks if c.name == self.mask)
        out = []
        for d in shape:
            if isinstance(d, int):
                out.append(str(d))
                continue
            out.append(next(f"{c.name}.shape[{axis}]" for c in self.checks if c.name != self.mask
                            for axis, e in enumerate(c.shape) if e == d))
        return out

    @property
    def unmasked_names(self) -> list[str]:
        return [n for n in self.names if n != self.mask]

    @property
    def torch_exportable(self) -> list[str]:
        """Parameters an nn.Linear / nn.BatchNorm1d state_dict has a name for (see torch/conventions.py)."""
        return [p.name for p in self.parameters if p.name in ("W", "b", "gamma", "beta")]

    @property
    def input_gradients(self) -> list[int]:
        """Positions of the arguments that are inputs with a gradient (X, or Y of a loss)."""
        return [i for i, (a, g) in enumerate(zip(self.names, self.gradients))
                if g is not None and self.roles[a] == "input"]

    @property
    def batch_inputs(self) -> list[str]:
        """Inputs whose rows are the batch (the first input's row dimension, not a size the module fixes): a
        framework module takes them as (*, D) and flattens their leading axes into those rows. A dropout mask
        (D×K) or a running statistic (1×K) is not one."""
        inputs = [c for c in self.checks if c.name in self.inputs and len(c.shape) == 2]
        if not inputs or not isinstance(inputs[0].shape[0], str):
            return []
        rows = inputs[0].shape[0]
        if rows in [d.name for d in self.dimensions]:
            return []
        return [c.name for c in inputs if c.shape[0] == rows]

    @property
    def averaged_over_rows(self) -> bool:
        """Whether the spec's value divides by its number of rows (mean_squared_error_loss: ·/(K·N)), i.e. the
        forward kernel reads N as a value: a framework's per-row values then divide by N as well, so that they
        sum to the spec's value."""
        if not self.batch_inputs:
            return False
        rows = next(c.shape[0] for c in self.checks if c.name == self.batch_inputs[0])
        return any(str(d) == rows for d in self.forward.dims)

    @property
    def autocast(self) -> str:
        """How a framework module follows mixed precision (torch.autocast), after torch's own op lists: a layer
        with a weight matrix runs in the autocast dtype ("lower", as nn.Linear), a loss in float32 (as torch's
        losses), anything else in the widest dtype of its arguments ("widest")."""
        if self.kind == "loss":
            return "float32"
        weights = [p for p in self.parameters if len(p.shape) == 2 and all(isinstance(d, str) for d in p.shape)]
        return "lower" if weights else "widest"

    @property
    def random_parameters(self) -> list[str]:
        """Parameters drawn at random when initialized (the others are constants)."""
        return [p.name for p in self.parameters if p.init == "fan_in"]

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.arguments]

    @property
    def differentiable(self) -> list[str]:
        """Arguments that get a gradient."""
        return [a for a, g in zip(self.names, self.gradients) if g is not None]

    @property
    def constant(self) -> list[str]:
        """Arguments that get none: inputs such as a dropout mask or targets, and hyperparameters."""
        return [a for a, g in zip(self.names, self.gradients) if g is None]

    @property
    def scaled(self) -> bool:
        """Whether backward multiplies the gradients by the incoming one (a loss's gradient kernel does not
        take it)."""
        return self.seed not in self.backward.facts.roles

    @property
    def check_table(self) -> str:
        """The checks as a Python literal: ``(("W", ("K", "D")), ("b", (1, "K")), ("X", ("N", "D")))``."""
        return repr(tuple((c.name, c.shape) for c in self.checks))

    @property
    def checked(self) -> list[str]:
        return [c.name for c in self.checks]

    @property
    def call_checks(self) -> list[Check]:
        """The checks in the order of the functional form's arguments (inputs first): on a tie, the shape of
        the earlier argument wins, so a W that disagrees with X is the one named."""
        order = {name: i for i, name in enumerate(self.names)}
        return sorted(self.checks, key=lambda c: order[c.name])

    @property
    def call_check_table(self) -> str:
        return repr(tuple((c.name, c.shape) for c in self.call_checks))

    @property
    def call_checked(self) -> list[str]:
        return [c.name for c in self.call_checks]

    @property
    def trusted(self) -> int:
        """How many checks are a module's own parameters, which fix the sizes its inputs must have."""
        return sum(1 for c in self.checks if c.name not in self.inputs)

    @property
    def shapes_text(self) -> str:
        return ", ".join(f"{a.name} {'scalar' if a.is_scalar else '×'.join(map(str, _shape(a)))}"
                         for a in self.arguments)

    @property
    def inputs_text(self) -> str:
        """``X: N×D, R: D×K``: the inputs a module's forward takes, with their shapes."""
        return ", ".join(f"{a.name}: {'×'.join(map(str, _shape(a)))}" for a in self.arguments
                         if a.name in self.inputs)

    @property
    def output_text(self) -> str:
        """``Y (N×K)``, or ``L (scalar)``."""
        shape = tuple(_dim(d) for d in self.forward.return_shapes[self.forward.returns.index(self.output)])
        return f"{self.output} ({'scalar' if shape == (1, 1) else '×'.join(map(str, shape))})"

    def signature(self, array: str, scalar: str, hyperparameter: str, names=None) -> str:
        """``X: Tensor, W: Tensor, alpha: float``: matrices are ``array``, trained scalars ``scalar``."""
        def kind(a: Argument) -> str:
            if self.roles[a.name] == "hyperparameter":
                return hyperparameter
            return scalar if a.is_scalar else array
        chosen = self.arguments if names is None else [a for a in self.arguments if a.name in names]
        return ", ".join(f"{a.name}: {kind(a)}" for a in chosen)


def _shape(argument: Argument) -> tuple:
    return () if argument.is_scalar else tuple(_dim(d) for d in argument.shape)


def _where(arguments: list[Argument], dim: str) -> str:
    """``the number of rows of W and columns of X and b``."""
    places: dict[str, list[str]] = {}
    for a in arguments:
        for axis, d in enumerate(_shape(a)):
            if d == dim:
                places.setdefault(("rows", "columns")[axis], []).append(a.name)
    return "the number of " + ", ".join(f"{axis} of {' and '.join(names)}" for axis, names in places.items())


def wrapper(forward: Kernel, backward: Kernel) -> Wrapper:
    roles = forward.facts.roles
    hyper_needed = [a.name for a in backward.arguments if backward.facts.roles[a.name] == "hyperparameter"]
    arguments = list(forward.arguments) + [a for a in backward.arguments if a.name in hyper_needed
                                           and a.name not in roles]
    all_roles = {**roles, **{a.name: backward.facts.roles[a.name] for a in arguments if a.name not in roles}}
    saved = [a.name for a in backward.arguments if backward.facts.roles[a.name] in ("input", "parameter", "forward")]
    for name in saved:
        if backward.facts.roles[name] == "forward" and name not in forward.returns:
            raise SpecError(f"spec {forward.spec!r}: backward needs {name}, which forward does not return")
    gradients = [f"D{a.name}" if f"D{a.name}" in backward.returns else None for a in arguments]
    parameters = [a for a in arguments if all_roles[a.name] == "parameter"]
    inputs = [a for a in arguments if all_roles[a.name] == "input"]
    checks = [Check(a.name, _shape(a)) for a in (*parameters, *inputs)]
    module_parameters = []
    for a in parameters:
        module_parameters.append(Parameter(a.name, _shape(a), forward.facts.init[a.name]))
    in_parameters = {d for p in module_parameters for d in p.shape if isinstance(d, str)}
    dims: list[str] = []
    for a in (*inputs, *parameters):
        for d in _shape(a):
            if isinstance(d, str) and d in in_parameters and d not in dims:
                dims.append(d)
    matrices = [a for a in (*inputs, *parameters) if not a.is_scalar]
    return Wrapper(
        spec=forward.spec, kind=forward.facts.kind, class_name=class_name(forward.spec),
        summary=forward.summary.rsplit(":", 1)[0], path=forward.path,
        forward=forward, backward=backward, arguments=arguments,
        roles=all_roles, output=forward.facts.output, forward_returns=list(forward.returns), saved=saved,
        saved_scalars=hyper_needed, gradient_returns=list(backward.returns), gradients=gradients,
        checks=checks, parameters=module_parameters,
        dimensions=[Dimension(d, _where(matrices, d)) for d in dims],
        inputs=[a.name for a in inputs], hyperparameters=[a.name for a in arguments
                                                          if all_roles[a.name] == "hyperparameter"],
        seed=f"D{forward.facts.output}", equations=list(forward.equations) + list(backward.equations),
    )


def wrappers(kernels: list[Kernel]) -> list[Wrapper]:
    """Every layer, function and loss among ``kernels`` (a spec's forward precedes its backward)."""
    by_spec: dict[str, list[Kernel]] = {}
    for f in kernels:
        if f.facts.kind != "update":
            by_spec.setdefault(f.spec, []).append(f)
    out = []
    for name, group in by_spec.items():
        if len(group) not in (2, 3):
            raise SpecError(f"spec {name!r}: expected a forward and a backward kernel, got {len(group)}")
        w = wrapper(*group[:2])
        # The third kernel, when there is one, is backward without the input's gradient (see lower.variants).
        w.backward_without_inputs = group[2] if len(group) == 3 else None
        out.append(w)
    return out


def link_modes(found: list[Wrapper], updates: dict) -> None:
    """Give each wrapper its train/eval companions (running statistics, the layer without dropout);
    ``updates``: kernel name → (family, Kernel) of every update kernel. A layer with running statistics
    takes their dimensions as constructor arguments (``SimpleBatchNorm(K)``), as torch's BatchNorm1d."""
    by_spec = {w.spec: w for w in found}
    for w in found:
        w.targets = w.forward.facts.targets
        running = w.forward.facts.running
        if running is not None:
            family, update = updates[f"{running.update}_update"]
            inference = by_spec[running.inference]
            shapes = {a.name: _shape(a) for a in update.arguments if a.name in running.initial}
            w.running = Running(update, family, inference, shapes, dict(running.initial), running.momentum)
            for shape in shapes.values():
                for d in shape:
                    if isinstance(d, str) and d not in [x.name for x in w.dimensions]:
                        statistics = [a for a in update.arguments if a.name in running.initial]
                        w.dimensions.append(Dimension(d, _where(statistics, d)))
        if w.forward.facts.dropout_of:
            base = by_spec[w.forward.facts.dropout_of]
            masks = [name for name in w.inputs if name not in base.inputs]
            if len(masks) != 1:
                raise SpecError(f"spec {w.spec!r}: a dropout form must have one input more than "
                                f"{base.spec!r} (its mask), not {', '.join(masks) or 'none'}")
            w.dropout, w.mask = base, masks[0]


def framework_wrappers(families) -> list[Wrapper]:
    """The wrappers of every printed family (:class:`~codegen.backends.interface.PrintedFamily`), each
    knowing its family; one SpecError when two specs would give the same class name."""
    found = []
    for family in families:
        # Kernels with a sparse (CSR) argument have no framework wrapper: autograd would need a gradient
        # with W's layout, and the kernels return DW as the 1 × nnz values on W's pattern.
        dense = [k.kernel for k in family.kernels if all(a.storage == "dense" for a in k.kernel.arguments)]
        for w in wrappers(dense):
            w.family = family.name
            found.append(w)
    link_modes(found, {k.kernel.name: (family.name, k.kernel) for family in families for k in family.kernels})
    names = [w.class_name for w in found]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise SpecError(f"specs {', '.join(w.spec for w in found if w.class_name in clash)} give the same "
                        f"class name {', '.join(clash)}; rename one, or add a word to WORDS in codegen/output/wrappers.py")
    return found
