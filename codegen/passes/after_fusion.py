"""The ``after_fusion`` pass: the rules that see more once maps are fused."""

from __future__ import annotations

from batchform.codegen.ir import nodes as ir
from batchform.codegen.ir.nodes import Transpose
from batchform.codegen.passes.factor_rows import factor_rows
from batchform.codegen.passes.fusion import fuse
from batchform.codegen.passes.rules import sum_of_transposed


def after_fusion(node: ir.Node) -> ir.Node:
    """The rules that see more once maps are fused: broadcast factors out of sums, sums of transposed maps
    as transposed sums (then ᵀᵀ cancels), and the maps that produces fused again."""

    def step(n):
        n = factor_rows(n) or sum_of_transposed(n) or n
        return n.a.a if isinstance(n, Transpose) and isinstance(n.a, Transpose) else n

    return fuse(ir.transform(node, step))
