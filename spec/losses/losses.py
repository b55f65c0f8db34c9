"""Losses of the paper: value (a 1 × 1 matrix) | gradient in Y.

Each is a sum over the batch, as in the paper. ``targets="classes"`` marks a classification loss: T holds one
row per sample that is one-hot (or a distribution), and the framework wrappers also take class indices.
"""
from batchform.dsl import (Spec, column_repeat, dims, elements_sum, hadamard, log, log_sigmoid, matrix, ones,
                      reciprocal, rows_sum, sigmoid, xlogy)
from batchform.spec.softmax import log_softmax, softmax, stable_log_softmax, stable_softmax

N, K = dims("N K")
Y, T = matrix("Y", N, K), matrix("T", N, K)
positive = {"Y": (0.1, 1.0)}


def loss(name, doc, value, gradient, paper, **extra) -> Spec:
    return Spec(name, "loss", doc, inputs=(Y, T), forward={"L": value}, backward={"DY": gradient},
                no_gradient={"T": "targets, not trained"}, paper=paper, **extra)


SPECS = [
    loss("squared_error_loss", "Squared error.",
         elements_sum(hadamard(Y - T, Y - T)), 2 * (Y - T),
         "§ loss functions: squared error"),
    loss("mean_squared_error_loss", "Mean squared error.",
         elements_sum(hadamard(Y - T, Y - T)) / (N * K), 2 * (Y - T) / (N * K),
         "§ loss functions: mean squared error"),
    # xlogy: a zero target contributes 0 even where its probability is 0 (0·log 0 = 0, as torch.xlogy)
    loss("cross_entropy_loss", "Cross-entropy of probabilities Y.",
         -elements_sum(xlogy(T, Y)), -hadamard(T, reciprocal(Y)),
         "§ loss functions: cross-entropy", sample=positive, targets="classes"),
    loss("softmax_cross_entropy_loss", "Softmax cross-entropy of logits Y.",
         -elements_sum(hadamard(T, log_softmax(Y))),
         hadamard(softmax(Y), T * ones(K) * ones(K).T) - T,
         "§ loss functions: softmax cross-entropy", targets="classes"),
    loss("softmax_cross_entropy_one_hot_loss", "Softmax cross-entropy of logits Y for rows of T summing to 1.",
         -elements_sum(hadamard(T, log_softmax(Y))), softmax(Y) - T,
         "§ loss functions: softmax cross-entropy, one-hot T", constraints={"T": "rows_sum_to_one"},
         targets="classes"),
    loss("stable_softmax_cross_entropy_loss", "Softmax cross-entropy of logits Y, shifted by the row maxima.",
         -elements_sum(hadamard(T, stable_log_softmax(Y))),
         hadamard(stable_softmax(Y), column_repeat(rows_sum(T), K)) - T,
         "§ loss functions: stable softmax cross-entropy", targets="classes"),
    loss("logistic_cross_entropy_loss", "Logistic cross-entropy of logits Y.",
         -elements_sum(hadamard(T, log_sigmoid(Y))), hadamard(T, sigmoid(Y)) - T,
         "§ loss functions: logistic cross-entropy"),
    loss("negative_log_likelihood_loss", "Negative log-likelihood of probabilities Y.",
         -elements_sum(log(rows_sum(hadamard(Y, T)))),
         -hadamard(column_repeat(reciprocal(rows_sum(hadamard(Y, T))), K), T),
         "§ loss functions: negative log-likelihood", sample={"Y": (0.1, 1.0), "T": (0.1, 1.0)},
         targets="classes"),
]
