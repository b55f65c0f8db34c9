"""The vocabulary every spec is written in: dimensions, matrices, primitives and spec records.

Primitives follow the paper's notation. Sums and repeats are products with columns of ones
(``columns_sum(X) = 1ᵀX``), so a spec reads like the paper; ``codegen`` recovers the cheap form from them.
Operations SymPy would canonicalize away (element-wise functions, Hadamard products, ``diag``, row maxima)
are opaque ``MatrixExpr`` nodes with ``_entry`` so that proofs can still instantiate them entry by entry.

Boundary convention (element-wise functions). Where f is not differentiable — at a breakpoint c of a
``Piecewise``, ``Max``, ``Min``, ``Abs`` or ``Heaviside`` — its derivative (and each partial ∂f/∂p) is taken to
be the derivative of the piece of f that *owns* c: the first case of f's ``Piecewise`` whose condition holds at
c (SymPy's rule). ``Max``, ``Min``, ``Abs`` and ``Heaviside`` are read through SymPy's
``rewrite(Piecewise)``, so ``Max(0, x)`` is ``Piecewise((0, x <= 0), (x, True))``: the 0 piece owns x = 0.
Where f is differentiable this is just f'(c). The proofs (``codegen/verify/pieces.py``) check every ``df`` and every
partial against this reading of ``diff(f)`` piece by piece on all of ℝ, boundaries included. It matches PyTorch,
JAX and the Nerva code at every breakpoint of the specs here: relu′(0) = 0, leaky_relu′(0) = α (PyTorch and
Nerva; JAX's ``leaky_relu`` gives 1), all_relu′(0) = 1, hard_sigmoid′(±3) = 0, srelu′(t_l) = a_l,
srelu′(t_r) = a_r.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy
from sympy import Lambda, MatrixExpr, MatrixSymbol, OneMatrix, Identity, ZeroMatrix, Symbol
from sympy.core.symbol import Str
from sympy.matrices.exceptions import ShapeError
from sympy.core.sympify import _sympify

__all__ = [
    "Activation", "Apply", "Diag", "DiagMatrix", "Equation", "Hadamard", "RowsMax", "ColumnsMax", "Spec",
    "activation_specs", "sparse", "column_repeat", "columns_max", "columns_mean", "columns_sum", "diag",
    "diag_matrix", "dims", "elements_sum", "apply", "hadamard", "identity", "inv_sqrt", "matrix", "ones",
    "row_repeat",
    "rows_max", "rows_mean", "rows_sum", "scalar", "x", "zeros", "exp", "log", "sqrt", "reciprocal",
    "log_sigmoid", "sigmoid", "TorchOptimizer", "xlogy", "XLogY", "MatrixXLogY", "RunningStatistics",
    "TorchBatchNorm", "running_statistics", "DEFAULT_MOMENTUM",
]

#: The variable of every scalar (element-wise) function.
x = Symbol("x", real=True)


def dims(names: str) -> tuple[Symbol, ...]:
    """Shape symbols, e.g. ``N, D, K = dims("N D K")``."""
    return sympy.symbols(names, integer=True, positive=True, seq=True)


def matrix(name: str, rows, cols) -> MatrixSymbol:
    """A named matrix of shape rows × cols."""
    return MatrixSymbol(name, rows, cols)


def scalar(name: str) -> Symbol:
    """A named real scalar (a hyperparameter such as α, or a trainable scalar such as SReLU's t_l)."""
    return Symbol(name, real=True)


def ones(rows, cols=1) -> MatrixExpr:
    """``1_m`` (a column of ones) or an m × n matrix of ones."""
    return OneMatrix(rows, cols)


def zeros(rows, cols) -> MatrixExpr:
    return ZeroMatrix(rows, cols)


def identity(n) -> MatrixExpr:
    return Identity(n)


# --- primitives defined by the paper's products with ones --------------------------------------------

def row_repeat(x_row: MatrixExpr, m) -> MatrixExpr:
    """``1_m · x``: the 1 × n row x repeated m times."""
    return OneMatrix(m, 1) * x_row


def column_repeat(x_col: MatrixExpr, n) -> MatrixExpr:
    """``x · 1_nᵀ``: the m × 1 column x repeated n times."""
    return x_col * OneMatrix(1, n)


def columns_sum(X: MatrixExpr) -> MatrixExpr:
    """``1ᵀ · X``: the 1 × n row of column sums."""
    return OneMatrix(1, X.shape[0]) * X


def rows_sum(X: MatrixExpr) -> MatrixExpr:
    """``X · 1``: the m × 1 column of row sums."""
    return X * OneMatrix(X.shape[1], 1)


def elements_sum(X: MatrixExpr) -> MatrixExpr:
    """``1ᵀ · X · 1``: the sum of all entries (a 1 × 1 matrix)."""
    return OneMatrix(1, X.shape[0]) * X * OneMatrix(X.shape[1], 1)


def columns_mean(X: MatrixExpr) -> MatrixExpr:
    return columns_sum(X) / X.shape[0]


def rows_mean(X: MatrixExpr) -> MatrixExpr:
    return rows_sum(X) / X.shape[1]


# --- opaque primitives ---------------------------------------------------------------------------------

class _Opaque(MatrixExpr):
    """A matrix node SymPy leaves alone; subclasses give ``shape`` and ``_entry``."""

    is_commutative = False

    def doit(self, **hints):
        return self

    def _eval_transpose(self):
        return None


class Hadamard(_Opaque):
    """``A ⊙ B``, the element-wise product."""

    def __new__(cls, A, B):
        A, B = _sympify(A), _sympify(B)
        if tuple(A.shape) != tuple(B.shape):
            raise ShapeError(f"Hadamard product of a {A.shape[0]}×{A.shape[1]} and a {B.shape[0]}×{B.shape[1]} "
                             f"matrix")
        return super().__new__(cls, A, B)

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        return self.args[0]._entry(i, j) * self.args[1]._entry(i, j)


class XLogY(sympy.Function):
    """x·log(y), and 0 where x = 0 whatever y is (also y = 0): the convention of torch.xlogy and
    scipy.special.xlogy, so a zero target never turns 0·log 0 into NaN. ∂/∂x = log y, ∂/∂y = x/y."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_zero:
            return sympy.Integer(0)
        if a.is_number and b.is_number:
            return a * sympy.log(b)
        return None

    def fdiff(self, argindex=1):
        a, b = self.args
        return sympy.log(b) if argindex == 1 else a / b


class MatrixXLogY(_Opaque):
    """``xlogy(A, B)``: :class:`XLogY` of the entries of A and B."""

    def __new__(cls, A, B):
        A, B = _sympify(A), _sympify(B)
        if tuple(A.shape) != tuple(B.shape):
            raise ShapeError(f"xlogy of a {A.shape[0]}×{A.shape[1]} and a {B.shape[0]}×{B.shape[1]} matrix")
        return super().__new__(cls, A, B)

    @property
    def shape(self):
        return self.args[0].shape

    def _entry(self, i, j, **kwargs):
        return XLogY(self.args[0]._entry(i, j), self.args[1]._entry(i, j))


class Apply(_Opaque):
    """``f(X)``, a scalar function f applied to every entry of X; ``name`` is how equations print it."""

    def __new__(cls, f: Lambda, X, name: str | Str = ""):
        # A rebuild (xreplace, subs) passes the name back as the Str it stored.
        return super().__new__(cls, f, _sympify(X), name if isinstance(name, Str) else Str(name or "f"))

    @property
    def name(self) -> str:
        return self.args[2].name

    @property
    def function(self) -> Lambda:
        return self.args[0]

    @property
    def shape(self):
        return self.args[1].shape

    def _entry(self, i, j, **kwargs):
        return self.function(self.args[1]._entry(i, j))


class Diag(_Opaque):
    """``diag(X)``: the diagonal of the square matrix X, as a column."""

    @property
    def shape(self):
        return (self.args[0].shape[0], sympy.Integer(1))

    def _entry(self, i, j, **kwargs):
        return self.args[0]._entry(i, i)


class DiagMatrix(_Opaque):
    """``Diag(x)``: the square matrix with the column (or row) x on its diagonal."""

    @property
    def shape(self):
        n = max(self.args[0].shape, key=lambda s: s != 1)
        return (n, n)

    def _entry(self, i, j, **kwargs):
        v = self.args[0]
        value = v._entry(i, 0) if v.shape[1] == 1 else v._entry(0, i)
        return sympy.KroneckerDelta(i, j) * value


class RowsMax(_Opaque):
    """``rows_max(X)``: the m × 1 column of row maxima."""

    @property
    def shape(self):
        return (self.args[0].shape[0], sympy.Integer(1))

    def _entry(self, i, j, **kwargs):
        X = self.args[0]
        return sympy.Max(*[X._entry(i, k) for k in range(X.shape[1])])


class ColumnsMax(_Opaque):
    """``columns_max(X)``: the 1 × n row of column maxima."""

    @property
    def shape(self):
        return (sympy.Integer(1), self.args[0].shape[1])

    def _entry(self, i, j, **kwargs):
        X = self.args[0]
        return sympy.Max(*[X._entry(k, j) for k in range(X.shape[0])])


def hadamard(A, B) -> MatrixExpr:
    return Hadamard(A, B)


def xlogy(A, B) -> MatrixExpr:
    """``A ⊙ log(B)`` entry-wise, with 0 where A is 0 (see :class:`XLogY`)."""
    return MatrixXLogY(A, B)


def diag(X) -> MatrixExpr:
    return Diag(X)


def diag_matrix(v) -> MatrixExpr:
    return DiagMatrix(v)


def rows_max(X) -> MatrixExpr:
    return RowsMax(X)


def columns_max(X) -> MatrixExpr:
    return ColumnsMax(X)


def apply(f, X, name: str = "") -> MatrixExpr:
    """Apply a scalar expression in ``x`` (or a ``Lambda``) to every entry of X, printed as ``name(X)``."""
    return Apply(f if isinstance(f, Lambda) else Lambda(x, f), X, name)


def exp(X):
    return apply(sympy.exp(x), X, "exp")


def log(X):
    return apply(sympy.log(x), X, "log")


def sqrt(X):
    return apply(sympy.sqrt(x), X, "sqrt")


def reciprocal(X):
    return apply(1 / x, X, "reciprocal")


def inv_sqrt(X):
    """``X^{-1/2}`` entry-wise."""
    return apply(1 / sympy.sqrt(x), X, "inv_sqrt")


sigmoid_expr = 1 / (1 + sympy.exp(-x))


def sigmoid(X):
    return apply(sigmoid_expr, X, "σ")


def log_sigmoid(X):
    """``log σ(X)``, written as ``−log(1 + e^{−x})`` so that backends can print it stably."""
    return apply(-sympy.log(1 + sympy.exp(-x)), X, "log_sigmoid")


# --- spec records --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Equation:
    """``name = expr``; ``name`` is the gradient of V when it reads ``DV`` for a forward variable V."""

    name: str
    expr: sympy.Basic
    line: int = 0


def _equations(pairs) -> tuple[Equation, ...]:
    if isinstance(pairs, dict):
        pairs = pairs.items()
    return tuple(p if isinstance(p, Equation) else Equation(str(p[0]), p[1]) for p in pairs)


@dataclass(frozen=True)
class Spec:
    """One layer, function, loss or optimizer update, as the paper's table gives it.

    kind: ``layer`` (``<name>_forward`` / ``<name>_backward``), ``function`` (``<name>`` /
    ``<name>_backward``), ``loss`` (``<name>`` / ``<name>_gradient``) or ``update`` (``<name>_update``).
    inputs / parameters: matrices and scalars the forward equations read; the gradients of parameters are
    what an optimizer updates. forward / backward: ordered equations (``{"Y": X*W.T + ...}``).
    hyperparameters: scalars that are arguments but not trained (α, ε, η, μ).
    sample: interval to draw each scalar or matrix entry from in proofs, e.g. ``{"alpha": (0.05, 0.5)}``.
    constraints: facts about inputs the equations rely on; ``{"T": "rows_sum_to_one"}`` is the only one.
    storage: how a parameter is stored when not dense: ``{"W": "csr"}`` (see :func:`sparse`).
    no_gradient: inputs or parameters that need no ``D<V>``, with the reason (``{"R": "dropout mask"}``);
    every other input and parameter of a layer, function or loss must have its gradient equation.
    derivatives: element-wise functions of the backward equations that claim to be derivatives of one of the
    forward equations, by ``apply`` name: ``{"relu'": ("relu", "x")}`` (∂/∂x), ``{"∂srelu/∂al": ("srelu",
    "al")}``; each is proved on all of ℝ (filled in by :func:`activation_specs`).
    reference: for an update, the independent statement it is checked against (a :class:`TorchOptimizer`).
    sparse_of: for a spec made by :func:`sparse`, the name of the dense spec it has the equations of.
    dropout_of: for a layer with a dropout mask, the layer it is without the mask (what eval mode runs).
    targets: ``"classes"`` for a classification loss (T holds one-hot rows; wrappers take class indices too).
    running: for a layer that keeps running statistics (see :func:`running_statistics`), what they are.
    statistics_of: for the running-statistics update made by :func:`running_statistics`, its layer.
    init: initial values of parameters, a number or ``"fan_in"`` (uniform in ±1/√columns); by default a
    matrix with two non-unit dimensions is ``"fan_in"`` and anything else starts at 0.
    """

    name: str
    kind: str
    doc: str
    inputs: tuple = ()
    parameters: tuple = ()
    forward: tuple[Equation, ...] = ()
    backward: tuple[Equation, ...] = ()
    hyperparameters: tuple = ()
    sample: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)
    storage: dict = field(default_factory=dict)
    init: dict = field(default_factory=dict)
    no_gradient: dict = field(default_factory=dict)
    derivatives: dict = field(default_factory=dict)
    reference: object = None
    paper: str = ""
    module: str = ""
    sparse_of: str = ""
    dropout_of: str = ""
    targets: str = ""
    running: RunningStatistics | None = None
    statistics_of: str = ""

    def __post_init__(self):
        object.__setattr__(self, "forward", _equations(self.forward))
        object.__setattr__(self, "backward", _equations(self.backward))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "hyperparameters", tuple(self.hyperparameters))

    @property
    def output(self) -> Equation:
        """The forward equation whose value the layer returns (its last one)."""
        return self.forward[-1]


@dataclass(frozen=True)
class TorchOptimizer:
    """An update rule's independent statement: ``torch.optim.<name>(**options)``, stepped on the parameter
    ``param`` with gradient ``grad``. ``options`` values are numbers or the spec's scalars (``{"lr": eta}``);
    ``state`` maps a spec variable to (torch state name, scale): ``{"Delta": ("momentum_buffer", -eta)}`` says
    Δ = −η · momentum_buffer. ``batchform verify`` runs both over several steps from a non-zero state."""

    name: str
    options: dict
    param: str = "theta"
    grad: str = "Dtheta"
    state: dict = field(default_factory=dict)


#: torch.nn.BatchNorm1d's default momentum, the weight of the newest batch in a running statistic.
DEFAULT_MOMENTUM = 0.1


@dataclass(frozen=True)
class RunningStatistics:
    """What a layer that keeps running statistics (batch normalization) records: the spec of its update
    (``<layer>_statistics``), the spec of its inference-mode forward (``<layer>_inference``), each statistic's
    initial value, and the default momentum."""

    update: str
    inference: str
    initial: dict
    momentum: float = DEFAULT_MOMENTUM


@dataclass(frozen=True)
class TorchBatchNorm:
    """A running-statistics update's independent statement: ``torch.nn.BatchNorm1d(K, momentum=m)`` in
    training mode on the spec's input ``X``; ``state`` maps the spec's statistics to torch's buffers.
    ``batchform verify`` runs both over several batches from a random non-zero state."""

    name: str = "BatchNorm1d"
    input: str = "X"
    momentum: str = "momentum"
    state: dict = field(default_factory=lambda: {"running_mean": "running_mean", "running_var": "running_var"})


def running_statistics(layer: Spec, inference: Spec, estimates: dict, initial: dict,
                       momentum: float = DEFAULT_MOMENTUM) -> list[Spec]:
    """A layer that normalizes by batch statistics in training and by running statistics in inference, as
    three specs: ``layer`` (training mode, as written), ``inference`` (its forward and backward in inference
    mode, reading the statistics as inputs without gradient; proved like any layer) and the update
    ``<layer>_statistics``.

    ``estimates`` maps each statistic (a 1 × K matrix named as torch's buffer, ``running_mean``) to its batch
    estimate, an expression in the layer's inputs. The update follows torch's momentum convention: with
    m = ``momentum`` (torch.nn.BatchNorm1d's default 0.1), s' = (1 − m)·s + m·estimate for every statistic s
    (an exponential moving average in which m weighs the newest batch). It is checked against
    ``torch.nn.BatchNorm1d`` (:class:`TorchBatchNorm`), so a variance estimate must be torch's unbiased one
    (divided by N − 1).
    """
    m = scalar("momentum")
    statistics = [s for s in estimates]
    read = []
    for estimate in estimates.values():
        for sym in sorted(estimate.atoms(MatrixSymbol), key=lambda s: s.name):
            if sym not in read and sym not in statistics:
                read.append(sym)
    update_name = f"{layer.name}_statistics"
    update = Spec(
        update_name, "update",
        f"Running statistics of {layer.name}: s' = (1 − m)·s + m·(batch estimate), m the momentum.",
        inputs=(*statistics, *read), hyperparameters=(m,), sample={"momentum": (0.05, 0.5)},
        forward={s.name: (1 - m) * s + m * estimate for s, estimate in estimates.items()},
        reference=TorchBatchNorm(), statistics_of=layer.name,
        paper="not in the paper: torch.nn.BatchNorm1d's running estimates",
    )
    record = RunningStatistics(update_name, inference.name, dict(initial), momentum)
    from dataclasses import replace

    return [replace(layer, running=record), inference, update]


def sparse(spec: Spec, name: str, **storage: str) -> Spec:
    """The same equations with some parameters stored sparsely, e.g. ``sparse(linear, "sparse_linear",
    W="csr")``: products with W use its sparse storage, and DW is computed on W's pattern only."""
    from dataclasses import replace

    return replace(spec, name=name, doc=f"{spec.doc.rstrip('.')}, with {', '.join(storage)} in CSR storage.",
                   storage=dict(storage), sparse_of=spec.name)


#: The mask R of a dropout layer: the wrappers draw it in training mode with rate p as inverted dropout (as
#: torch.nn.Dropout): each entry is 0 with probability p, else 1/(1 − p), so E[R] = 1 and eval mode, which
#: runs the layer without R, needs no rescaling.
DROPOUT_MASK = "dropout mask (entries 0 or 1/(1 − p), drawn in training mode), not trained"


# --- activations: one scalar function gives an element-wise function spec and a layer spec -------------

@dataclass(frozen=True)
class Activation:
    """A scalar activation f(x), with its hand-derived derivative f'(x) or without (``df=None``: batchform
    derives the backward equations, f' being ``diff(f)`` under the boundary convention above).

    params: scalars f depends on; trainable ones need ``partials`` (∂f/∂p as expressions in x) when df is
    given (without df they are derived too) and may give initial values in ``init``.
    """

    name: str
    title: str
    f: sympy.Expr
    df: sympy.Expr | None = None
    params: tuple = ()
    trainable: tuple = ()
    partials: dict = field(default_factory=dict)
    sample: dict = field(default_factory=dict)
    init: dict = field(default_factory=dict)
    paper: str = ""

    def __call__(self, X):
        return apply(self.f, X, self.name)

    def prime(self, X):
        return apply(self.df, X, self.name + "'")


def activation_specs(act: Activation) -> list[Spec]:
    """Four specs from one activation: the element-wise function ``Y = f(X)``, the layer
    ``Y = f(X·Wᵀ + 1_N·b)``, its dropout form ``Y = f(X·(Wᵀ ⊙ R) + 1_N·b)`` and its sparse form
    ``sparse_<name>_layer`` (W in CSR). Without ``df``, their backward equations are left out: batchform
    derives them (codegen/derive)."""
    if act.df is None:
        return _forward_only_specs(act)
    N, D, K = dims("N D K")
    X, DY = matrix("X", N, K), matrix("DY", N, K)

    def partial(p, M):
        return apply(act.partials[p], M, f"∂{act.name}/∂{p.name}")

    hyper = tuple(p for p in act.params if p not in act.trainable)
    derivatives = {f"{act.name}'": (act.name, x.name),
                   **{f"∂{act.name}/∂{p.name}": (act.name, p.name) for p in act.trainable if p in act.partials}}
    # a trainable scalar without its partial in ``partials`` gets its gradient derived (codegen/derive)
    gradients = {f"D{p.name}": elements_sum(hadamard(DY, partial(p, X))) for p in act.trainable if p in act.partials}
    function = Spec(
        name=act.name, kind="function", doc=f"{act.title}, applied element-wise.",
        inputs=(X,), parameters=act.trainable, hyperparameters=hyper, sample=act.sample, init=act.init,
        paper=act.paper, derivatives=derivatives,
        forward={"Y": act(X)},
        backward={**gradients, "DX": hadamard(DY, act.prime(X))},
    )
    X, W, b, Z, DZ = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K), matrix("Z", N, K), matrix("DZ", N, K)
    layer_gradients = {f"D{p.name}": elements_sum(hadamard(DY, partial(p, Z))) for p in act.trainable
                       if p in act.partials}
    layer = Spec(
        name=f"{act.name}_layer", kind="layer", doc=f"Linear layer followed by {act.title}.",
        inputs=(X,), parameters=(W, b, *act.trainable), hyperparameters=hyper, sample=act.sample,
        init=act.init, paper=act.paper, derivatives=derivatives,
        forward={"Z": X * W.T + row_repeat(b, N), "Y": act(Z)},
        backward={
            "DZ": hadamard(DY, act.prime(Z)),
            **layer_gradients,
            "DW": DZ.T * X,
            "Db": columns_sum(DZ),
            "DX": DZ * W,
        },
    )
    R = matrix("R", D, K)
    dropout = Spec(
        name=f"{act.name}_dropout_layer", kind="layer", dropout_of=layer.name,
        doc=f"Linear layer with a dropout mask on its weights, followed by {act.title}.",
        inputs=(X, R), parameters=(W, b, *act.trainable), hyperparameters=hyper, sample=act.sample,
        init=act.init, paper=act.paper + "; § dropout: activation dropout layer", derivatives=derivatives,
        no_gradient={"R": DROPOUT_MASK},
        forward={"Z": X * hadamard(W.T, R) + row_repeat(b, N), "Y": act(Z)},
        backward={
            "DZ": hadamard(DY, act.prime(Z)),
            **layer_gradients,
            "DW": hadamard(DZ.T * X, R.T),
            "Db": columns_sum(DZ),
            "DX": DZ * hadamard(W, R.T),
        },
    )
    # The sparse-training form: the same layer with W in CSR storage (DW on W's pattern only). The dropout
    # form has none: its mask R is a dense D × K matrix on Wᵀ, which a CSR W cannot carry.
    return [function, layer, dropout, sparse(layer, f"sparse_{layer.name}", W="csr")]


def _forward_only_specs(act: Activation) -> list[Spec]:
    """:func:`activation_specs` for an activation given by f alone: the same four specs, forward only."""
    from dataclasses import replace

    N, D, K = dims("N D K")
    hyper = tuple(p for p in act.params if p not in act.trainable)
    common = {"parameters": act.trainable, "hyperparameters": hyper, "sample": act.sample, "init": act.init,
              "paper": act.paper}
    X = matrix("X", N, K)
    function = Spec(name=act.name, kind="function", doc=f"{act.title}, applied element-wise.", inputs=(X,),
                    forward={"Y": act(X)}, **common)
    X, W, b, Z = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K), matrix("Z", N, K)
    layer = Spec(name=f"{act.name}_layer", kind="layer", doc=f"Linear layer followed by {act.title}.",
                 inputs=(X,), **{**common, "parameters": (W, b, *act.trainable)},
                 forward={"Z": X * W.T + row_repeat(b, N), "Y": act(Z)})
    R = matrix("R", D, K)
    dropout = replace(layer, name=f"{act.name}_dropout_layer", dropout_of=layer.name, inputs=(X, R),
                      doc=f"Linear layer with a dropout mask on its weights, followed by {act.title}.",
                      no_gradient={"R": DROPOUT_MASK}, paper=act.paper + "; § dropout: activation dropout layer",
                      forward={"Z": X * hadamard(W.T, R) + row_repeat(b, N), "Y": act(Z)})
    return [function, layer, dropout, sparse(layer, f"sparse_{layer.name}", W="csr")]
