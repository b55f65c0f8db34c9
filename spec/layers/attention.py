"""Single-head self-attention over the rows of X (N tokens × D features), with torch's output projection:
Q = X·W_qᵀ, K = X·W_kᵀ, V = X·W_vᵀ (E × D weights), Z = Q·Kᵀ/√E (the scores), P = softmax(Z) row by row (shifted by the
row maxima), O = P·V and Y = O·W_oᵀ (W_o: D × E).

This is torch.nn.MultiheadAttention(D, num_heads=1, bias=False) on one sequence (query = key = value = X) with
E = D; E may differ from D here. With the output projection a multi-head layer is the *sum* of H such heads:
concat(O_1 … O_H)·W_oᵀ = Σ_h O_h·W_o,hᵀ, W_o,h the h-th block of E columns of torch's out_proj weight (the
wrappers compose H generated heads this way). Z and P are N × N: that is the algorithm; no other value is.
Forward only: batchform derives the backward equations (docs/derivation.md)."""
from sympy import sqrt

from batchform.dsl import Spec, dims, matrix
from batchform.spec.softmax import stable_softmax

N, D, E = dims("N D E")
X = matrix("X", N, D)
Wq, Wk, Wv, Wo = matrix("Wq", E, D), matrix("Wk", E, D), matrix("Wv", E, D), matrix("Wo", D, E)
Q, K, V = matrix("Q", N, E), matrix("K", N, E), matrix("V", N, E)
Z, P, O = matrix("Z", N, N), matrix("P", N, N), matrix("O", N, E)

SPECS = [Spec(
    "self_attention", "layer", "Single-head self-attention Y = softmax(Q·Kᵀ/√E)·V·W_oᵀ, Q, K, V = X·W_{q,k,v}ᵀ.",
    inputs=(X,), parameters=(Wq, Wk, Wv, Wo),
    init={"Wq": "fan_in", "Wk": "fan_in", "Wv": "fan_in", "Wo": "fan_in"},
    forward={
        "Q": X * Wq.T,
        "K": X * Wk.T,
        "V": X * Wv.T,
        "Z": Q * K.T / sqrt(E),
        "P": stable_softmax(Z),
        "O": P * V,
        "Y": O * Wo.T,
    },
)]
