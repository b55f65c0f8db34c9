"""Sparse training with the generated CSR kernels: W is stored as its pattern and values only.

    python examples/sparse_training.py [--density 0.2] [--epochs 10]

A 64-256-10 network on scikit-learn's digits whose first layer keeps a fixed random pattern (scipy.sparse
CSR): the forward is CSR × dense, DW is computed on the pattern only (1 × nnz values; no dense K × D
gradient is formed) and the update touches the stored values. `batchform train --overall-density` does the
same with pruning and regrowth for every backend.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse

import batchform.generated.numpy as bf
from batchform.data import iterate_minibatches, load_digits_dataset


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--density", type=float, default=0.2, help="density of the first layer (default: 0.2)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    data = load_digits_dataset(seed=0, dtype="float64")
    D, H, K = 64, 256, 10
    W1 = scipy.sparse.random(H, D, density=args.density, format="csr", random_state=0,
                             data_rvs=lambda n: rng.normal(0, np.sqrt(2 / (D * args.density)), n))
    W1.sort_indices()
    b1, W2, b2 = np.zeros((1, H)), rng.normal(0, np.sqrt(2 / H), (K, H)), np.zeros((1, K))
    eta = 0.05
    for _ in range(args.epochs):
        for X, T in iterate_minibatches(data.Xtrain, data.Ttrain, 32, rng):
            Z1, Y1 = bf.sparse_relu_layer_forward(X, W1, b1)
            Y = bf.linear_forward(Y1, W2, b2)
            DY = bf.stable_softmax_cross_entropy_loss_gradient(Y, T) / X.shape[0]
            DW2, Db2, DY1 = bf.linear_backward(Y1, W2, DY)
            DW1, Db1 = bf.sparse_relu_layer_backward_without_DX(X, W1, Z1, DY1)
            W1.data -= eta * DW1.ravel()  # the gradient of the stored values, in W1's pattern order
            b1 -= eta * Db1
            W2 -= eta * DW2
            b2 -= eta * Db2
    _, Y1 = bf.sparse_relu_layer_forward(data.Xtest, W1, b1)
    accuracy = float((bf.linear_forward(Y1, W2, b2).argmax(1) == data.Ttest.argmax(1)).mean())
    print(f"first layer {H}×{D} at density {W1.nnz / (H * D):.3f} ({W1.nnz} stored weights); "
          f"test accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
