"""Softmax and log-softmax layers: a linear layer followed by a (stable) row-wise softmax."""
from batchform.dsl import Spec, columns_sum, dims, matrix, row_repeat, sparse
from batchform.spec.softmax import log_softmax_backward, softmax_backward, stable_log_softmax, stable_softmax

N, D, K = dims("N D K")
X, W, b = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K)
Z, Y, DY, DZ = matrix("Z", N, K), matrix("Y", N, K), matrix("DY", N, K), matrix("DZ", N, K)

SPECS = [
    Spec("softmax_layer", "layer", "Linear layer followed by softmax.",
         inputs=(X,), parameters=(W, b),
         forward={"Z": X * W.T + row_repeat(b, N), "Y": stable_softmax(Z)},
         backward={"DZ": softmax_backward(Y, DY), "DW": DZ.T * X, "Db": columns_sum(DZ), "DX": DZ * W},
         paper="§ softmax layer: DZ = Y ⊙ (DY − diag(DY·Yᵀ)·1ᵀ)"),
    Spec("log_softmax_layer", "layer", "Linear layer followed by log-softmax.",
         inputs=(X,), parameters=(W, b),
         forward={"Z": X * W.T + row_repeat(b, N), "Y": stable_log_softmax(Z)},
         backward={"DZ": log_softmax_backward(stable_softmax(Z), DY), "DW": DZ.T * X,
                   "Db": columns_sum(DZ), "DX": DZ * W},
         paper="§ log-softmax layer: DZ = DY − softmax(Z) ⊙ (DY·1·1ᵀ)"),
]
# Their sparse-training forms: the same equations, W in CSR storage.
SPECS += [sparse(s, f"sparse_{s.name}", W="csr") for s in list(SPECS)]
