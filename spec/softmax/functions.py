"""softmax, stable softmax, log-softmax and stable log-softmax as functions with their backward."""
from batchform.dsl import Spec, dims, matrix
from batchform.spec.softmax import (log_softmax, log_softmax_backward, softmax, softmax_backward, stable_log_softmax,
                          stable_softmax)

N, D = dims("N D")
X, Y, DY = matrix("X", N, D), matrix("Y", N, D), matrix("DY", N, D)

SPECS = [
    Spec("softmax", "function", "Row-wise softmax.", inputs=(X,),
         forward={"Y": softmax(X)}, backward={"DX": softmax_backward(Y, DY)},
         paper="§ softmax: softmax(X) = e^X ⊙ (1/(e^X·1)·1ᵀ)"),
    Spec("stable_softmax", "function", "Row-wise softmax, shifted by the row maxima.", inputs=(X,),
         forward={"Y": stable_softmax(X)}, backward={"DX": softmax_backward(Y, DY)},
         paper="§ softmax: stable softmax uses X − rows_max(X)·1ᵀ"),
    Spec("log_softmax", "function", "Row-wise log-softmax.", inputs=(X,),
         forward={"Y": log_softmax(X)}, backward={"DX": log_softmax_backward(softmax(X), DY)},
         paper="§ softmax: log_softmax(X) = X − log(e^X·1)·1ᵀ"),
    Spec("stable_log_softmax", "function", "Row-wise log-softmax, shifted by the row maxima.", inputs=(X,),
         forward={"Y": stable_log_softmax(X)}, backward={"DX": log_softmax_backward(stable_softmax(X), DY)},
         paper="§ softmax: stable log-softmax"),
]
