"""Linear layer: Y = X·Wᵀ + 1_N·b."""
from batchform.dsl import Spec, columns_sum, dims, matrix, row_repeat, sparse

N, D, K = dims("N D K")
X, W, b, DY = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K), matrix("DY", N, K)

linear = Spec(
    "linear", "layer", "Linear layer.",
    inputs=(X,), parameters=(W, b),
    forward={"Y": X * W.T + row_repeat(b, N)},
    backward={"DW": DY.T * X, "Db": columns_sum(DY), "DX": DY * W},
    paper="§ linear layer",
)

# The sparse-training layer: the same equations, W in CSR storage, DW only on W's pattern.
SPECS = [linear, sparse(linear, "sparse_linear", W="csr")]
