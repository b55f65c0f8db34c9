"""Multi-head self-attention as H generated single-head layers (spec ``self_attention``), summed.

torch.nn.MultiheadAttention(D, H, bias=False) on one sequence computes concat(O_1, …, O_H)·W_oᵀ with
O_h = softmax(Q_h·K_hᵀ/√E)·V_h, E = D/H, Q_h = X·W_q,hᵀ (W_q,h the h-th block of E rows of W_q) and likewise K_h,
V_h. Splitting W_o into its blocks of E columns W_o,h, that is Σ_h O_h·W_o,hᵀ: the sum of H heads of the
generated spec, each with its own output projection. So this module adds the outputs of H generated
``SelfAttention`` modules and writes no equation of its own; its gradients are the heads' generated backward
kernels (autograd sums the heads' DX). A spec with H heads inside would need H as a dimension of blocks, which
the matrix DSL does not have; composing heads keeps one proved spec for every H.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MultiHeadSelfAttention(nn.Module):
    """H heads of width E = D/H of the generated ``SelfAttention``, their outputs summed.

    ``forward(X)`` takes one sequence (N × D) or a batch of them (B × N × D, attended one sequence at a time);
    ``load_torch_state_dict`` / ``torch_state_dict`` read and write the state_dict of
    ``nn.MultiheadAttention(D, H, bias=False)`` (``in_proj_weight``, ``out_proj.weight``)."""

    def __init__(self, D: int, H: int, *, device=None, dtype=None) -> None:
        super().__init__()
        if H < 1 or D % H:
            raise ValueError(f"MultiHeadSelfAttention: the width D = {D} must be a multiple of the number of "
                             f"heads H = {H} ≥ 1")
        from batchform.generated.torch.modules import SelfAttention

        self.D, self.H, self.E = D, H, D // H
        self.heads = nn.ModuleList(SelfAttention(D, self.E, device=device, dtype=dtype) for _ in range(H))

    def extra_repr(self) -> str:
        return f"D={self.D}, H={self.H}"

    def forward(self, X: Tensor) -> Tensor:
        if isinstance(X, Tensor) and X.ndim == 3:
            return torch.stack([self.forward(sequence) for sequence in X.unbind(0)])
        Y = self.heads[0](X)
        for head in self.heads[1:]:
            Y = Y + head(X)
        return Y


    def torch_state_dict(self, gradients: bool = False) -> dict[str, Tensor]:
        """The weights (or, with ``gradients``, their gradients) as nn.MultiheadAttention(bias=False) names them."""
        def value(p: Tensor) -> Tensor:
            if not gradients:
                return p.detach()
            return p.grad if p.grad is not None else torch.zeros_like(p)

        in_proj = torch.cat([torch.cat([value(getattr(head, name)) for head in self.heads])
                             for name in ("Wq", "Wk", "Wv")])
        out_proj = torch.cat([value(head.Wo) for head in self.heads], dim=1)
        return {"in_proj_weight": in_proj, "out_proj.weight": out_proj}

    def load_torch_state_dict(self, state: dict) -> None:
        """Copy an nn.MultiheadAttention(D, H, bias=False) state_dict (every entry checked before any is copied)."""
        D = self.D
        wanted = {"in_proj_weight": (3 * D, D), "out_proj.weight": (D, D)}
        extra = sorted(set(state) - set(wanted))
        if extra:
            raise KeyError(f"MultiHeadSelfAttention: the state_dict holds {', '.join(extra)}, which a layer "
                           f"without biases has no place for (nn.MultiheadAttention(..., bias=False) has none)")
        for key, shape in wanted.items():
            if key not in state:
                raise KeyError(f"MultiHeadSelfAttention: the state_dict lacks {key!r}")
            if tuple(state[key].shape) != shape:
                raise ValueError(f"MultiHeadSelfAttention: state_dict entry {key!r} has shape "
                                 f"{tuple(state[key].shape)}, expected {shape}")
        in_proj, out_proj = state["in_proj_weight"], state["out_proj.weight"]
        with torch.no_grad():
            for h, head in enumerate(self.heads):
                rows = slice(h * self.E, (h + 1) * self.E)
                for k, name in enumerate(("Wq", "Wk", "Wv")):
                    getattr(head, name).copy_(in_proj[k * D:(k + 1) * D][rows])
                head.Wo.copy_(out_proj[:, rows])
