"""A small transformer block built from generated torch modules, trained on a toy sequence task.

    python examples/transformer_block.py [--steps 300]

Each example is a sequence of N = 8 tokens drawn from V = 8 symbols; the target at every position is the
largest symbol anywhere in the sequence, so each token must look at all the others — what attention is for.
The block is pre-norm, as in most transformers:

    H = X + MultiHeadSelfAttention(LayerNorm(X))          (2 heads of the generated SelfAttention)
    Y = Linear(ResidualReLULayer(LayerNorm(H)))           (the MLP, its skip connection the generated one)

every part a generated nn.Module whose backward is the generated (derived, proved) kernel; the embedding is a
generated Linear of the one-hot tokens, the loss the generated StableSoftmaxCrossEntropyLoss. Prints the loss
as it falls and the accuracy per token at the end.
"""

from __future__ import annotations

import argparse

import torch

import batchform.generated.torch as bt
from batchform.runtime.torch.attention import MultiHeadSelfAttention

TOKENS, SYMBOLS, WIDTH, HEADS = 8, 8, 32, 2


class TransformerBlock(torch.nn.Module):
    def __init__(self, D: int, H: int) -> None:
        super().__init__()
        self.norm1, self.attention = bt.LayerNorm(D, 1e-5), MultiHeadSelfAttention(D, H)
        self.norm2, self.mlp = bt.LayerNorm(D, 1e-5), bt.ResidualReLULayer(D)

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # X: batch × tokens × D
        H = X + self.attention(self.norm1(X))
        return self.mlp(self.norm2(H))


def batch(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot tokens (size × N × V) and, per token, the class to predict: the sequence's largest symbol."""
    symbols = torch.randint(0, SYMBOLS, (size, TOKENS), generator=generator)
    targets = symbols.max(dim=1, keepdim=True).values.expand(size, TOKENS)
    return torch.nn.functional.one_hot(symbols, SYMBOLS).float(), targets


def main(argv=None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of 16 sequences (default: 300)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(bt.Linear(SYMBOLS, WIDTH), TransformerBlock(WIDTH, HEADS), bt.Linear(WIDTH, SYMBOLS))
    loss_of = bt.StableSoftmaxCrossEntropyLoss(reduction="mean")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(args.steps):
        X, T = batch(16, generator)
        optimizer.zero_grad()
        Y = model(X)
        loss = loss_of(Y.reshape(-1, SYMBOLS), T.reshape(-1))  # mean over the batch's tokens
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % max(1, args.steps // 10) == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    with torch.no_grad():
        X, T = batch(256, generator)
        accuracy = (model(X).argmax(dim=-1) == T).float().mean().item()
    print(f"accuracy per token on 256 new sequences: {accuracy:.3f} (chance about {1 / SYMBOLS:.3f})")
    return losses


if __name__ == "__main__":
    main()
