"""Linear dropout layer (mask R ∈ ℝ^{D×K} on Wᵀ): Y = X·(Wᵀ ⊙ R) + 1_N·b.

R is inverted dropout with rate p (``DROPOUT_MASK`` in spec/dsl.py): entries 0 with probability p, else
1/(1 − p), drawn by the wrappers in training mode; eval mode runs ``linear`` (the layer without R).

Activation dropout layers are built for every activation in ``spec.activations`` by
``spec.dsl.activation_specs``.
"""
from batchform.dsl import DROPOUT_MASK, Spec, columns_sum, dims, hadamard, matrix, row_repeat

N, D, K = dims("N D K")
X, W, b, R, DY = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K), matrix("R", D, K), matrix("DY", N, K)

SPECS = [
    Spec("linear_dropout", "layer", "Linear layer with a dropout mask on its weights.",
         inputs=(X, R), parameters=(W, b), no_gradient={"R": DROPOUT_MASK}, dropout_of="linear",
         forward={"Y": X * hadamard(W.T, R) + row_repeat(b, N)},
         backward={"DW": hadamard(DY.T * X, R.T), "Db": columns_sum(DY), "DX": DY * hadamard(W, R.T)},
         paper="§ dropout: linear dropout layer"),
]
