"""Single-head self-attention over the rows of X (N tokens × D features), forward only (a check of the
derivation, not a built-in spec): Q = X·W_qᵀ, K = X·W_kᵀ, V = X·W_vᵀ (E × D weights),
S = Q·Kᵀ/√E, P = softmax(S) row by row (shifted by the row maxima), Y = P·V."""
from sympy import sqrt

from batchform.dsl import Spec, dims, matrix
from batchform.spec.softmax import stable_softmax

N, D, E = dims("N D E")
X = matrix("X", N, D)
Wq, Wk, Wv = matrix("Wq", E, D), matrix("Wk", E, D), matrix("Wv", E, D)
Q, K, V, S, P = (matrix("Q", N, E), matrix("K", N, E), matrix("V", N, E), matrix("S", N, N), matrix("P", N, N))

SPECS = [Spec(
    "self_attention", "layer", "Single-head self-attention: softmax(Q·Kᵀ/√E)·V.",
    inputs=(X,), parameters=(Wq, Wk, Wv),
    init={"Wq": "fan_in", "Wk": "fan_in", "Wv": "fan_in"},
    forward={
        "Q": X * Wq.T,
        "K": X * Wk.T,
        "V": X * Wv.T,
        "S": Q * K.T / sqrt(E),
        "P": stable_softmax(S),
        "Y": P * V,
    },
)]
