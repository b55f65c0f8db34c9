"""A PyTorch model built from the generated modules: autograd runs the generated backward kernels.

    python examples/torch_model.py [--steps 200]

Trains 64-32-10 on scikit-learn's digits with torch.optim.SGD and prints the test accuracy; the generated
Linear / ReLULayer modules are drop-in nn.Modules.
"""

from __future__ import annotations

import argparse

import torch

import batchform.generated.torch as bt
from batchform.data import load_digits_dataset


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="SGD steps of batch 32 (default: 200)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    data = load_digits_dataset(seed=0, dtype="float32")
    X, T = torch.from_numpy(data.Xtrain), torch.from_numpy(data.Ttrain)
    model = torch.nn.Sequential(bt.ReLULayer(64, 32), bt.Linear(32, 10))
    loss_of = bt.StableSoftmaxCrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(args.steps):
        rows = torch.randint(0, X.shape[0], (32,))
        optimizer.zero_grad()
        loss = loss_of(model(X[rows]), T[rows]) / 32  # the generated losses are sums over the batch
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = model(torch.from_numpy(data.Xtest)).argmax(dim=1)
        accuracy = (predicted == torch.from_numpy(data.Ttest).argmax(dim=1)).float().mean().item()
    print(f"test accuracy after {args.steps} steps: {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    main()
