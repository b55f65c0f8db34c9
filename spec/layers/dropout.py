"""Linear dropout layer (mask R ∈ ℝ^{D×K} on Wᵀ): Y = X·(Wᵀ ⊙ R) + 1_N·b.

Activation dropout layers are built for every activation in ``spec.activations`` by
``spec.dsl.activation_specs``.
"""
from spec.dsl import Spec, columns_sum, dims, hadamard, matrix, row_repeat

N, D, K = dims("N D K")
X, W, b, R, DY = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K), matrix("R", D, K), matrix("DY", N, K)

SPECS = [
    Spec("linear_dropout", "layer", "Linear layer with a dropout mask on its weights.",
         inputs=(X, R), parameters=(W, b), no_gradient={"R": "dropout mask, not trained"},
         forward={"Y": X * hadamard(W.T, R) + row_repeat(b, N)},
         backward={"DW": hadamard(DY.T * X, R.T), "Db": columns_sum(DY), "DX": DY * hadamard(W, R.T)},
         paper="§ dropout: linear dropout layer"),
]
