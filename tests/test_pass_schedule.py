"""The passes stage has a shape (issue #24): every pass is named, each kind of spec declares its list of
passes, IR nodes print themselves, and `batchform show NAME --ir --after PASS` shows the IR after any pass."""

from __future__ import annotations

import sympy
from batchform.codegen.ir import nodes as ir
from batchform.codegen.passes.schedule import EQUATIONS, PIPELINES, UPDATE, optimize, pass_names

from batchform.cli import main

N, K = sympy.Symbol("N", integer=True, positive=True), sympy.Symbol("K", integer=True, positive=True)


def test_every_kind_of_spec_declares_its_passes_by_name(loaded_specs):
    assert set(PIPELINES) == {"layer", "function", "loss", "update"}
    assert len(set(pass_names())) == len(pass_names())
    assert [p.name for p in EQUATIONS][:2] == ["rewrite", "cse"] and EQUATIONS[-1].name == "live"
    assert [p.name for p in UPDATE] == ["rewrite", "fuse", "stable_forms", "after_fusion", "steady_cse"]
    # the trace sees each declared pass, in order, after the frozen equations
    seen = []
    optimize(loaded_specs["batch_norm"], trace=lambda part, name, statements: seen.append((part, name)))
    assert seen == [
        (part, name) for part in ("forward", "backward") for name in ["freeze", *(p.name for p in EQUATIONS)]
    ]


def test_the_declared_passes_are_what_optimize_runs(loaded_specs):
    """The statements after the last traced pass are the optimized equations the kernels are lowered from."""
    for name in ("batch_norm", "momentum", "softmax_cross_entropy_loss"):
        last = {}
        optimized = optimize(
            loaded_specs[name], trace=lambda part, _, statements: last.__setitem__(part, statements)
        )
        for part in last:
            assert tuple(last[part]) == getattr(optimized, "forward" if part == "update" else part), (
                name,
                part,
            )


def test_ir_nodes_print_as_the_equation_they_compute():
    X, W = ir.Var("X", (N, K)), ir.Var("W", (K, K))
    b = ir.Var("b", (1, K))
    Z = ir.elementwise(
        ir.placeholder(0) + ir.placeholder(1), (ir.MatMul(X, ir.Transpose(W)), ir.Repeat(0, N, b)), (N, K)
    )
    assert str(Z) == "map[_0 + _1]((X · Wᵀ), repeat_rows(N, b)): N×K"
    assert str(ir.Reduce("sum", 0, X)) == "sum_columns(X)" and str(ir.Reduce("max", 1, X)) == "max_rows(X)"
    assert str(ir.Transpose(ir.MatMul(X, W))) == "((X · W))ᵀ" and str(ir.Ones((1, N))) == "ones(1×N)"
    assert str(ir.DiagOf(ir.MatMul(X, ir.Transpose(X)))) == "diag((X · Xᵀ))" and str(ir.Eye((K, K))) == "I(K)"


def test_show_ir_after_a_pass(capsys):
    assert main(["show", "sigmoid_layer", "--ir", "--after", "freeze"]) == 0
    frozen = capsys.readouterr().out
    assert "  Db = (ones(1×N) · DZ)" in frozen and "Y = map[1/(1 + exp(-_0))](Z): N×K" in frozen
    assert main(["show", "sigmoid_layer", "--ir", "--after", "rewrite"]) == 0
    assert "  Db = sum_columns(DZ)" in capsys.readouterr().out
    assert main(["show", "sigmoid_layer", "--ir"]) == 0  # after the last pass: σ recognized
    assert "Y = map[Sigmoid(_0)](Z): N×K" in capsys.readouterr().out
    assert main(["show", "sigmoid_layer", "--after", "lower"]) == 0
    lowered = capsys.readouterr().out
    assert "kernel sigmoid_layer_backward(" in lowered and "  Db = sum_columns(DZ)" in lowered


def test_show_ir_names_the_passes_when_one_is_unknown(capsys):
    assert main(["show", "momentum", "--ir", "--after", "hoist_invariants"]) == 2
    err = capsys.readouterr().err
    assert "--after hoist_invariants: not a pass of an update spec" in err
    assert "rewrite, fuse, stable_forms, after_fusion, steady_cse, lower" in err


def test_a_backend_lists_its_kernel_passes_and_torch_chooses_its_idioms_as_ir_nodes(loaded_specs):
    from batchform.codegen.backends import all_backends
    from batchform.codegen.backends.torch.idioms import TORCH_IDIOMS, AddCMul, AddMM
    from batchform.codegen.pipeline import kernels_of

    backends = all_backends()
    assert [p.name for p in backends["torch"].passes] == ["eager_sharing", "torch_idioms"]
    assert [p.name for p in backends["numpy"].passes] == ["eager_sharing"]
    kernels = {
        k.name: k
        for family in kernels_of([loaded_specs["linear"], loaded_specs["batch_norm"]])
        for k in family.kernels
    }
    forward = TORCH_IDIOMS(kernels["linear_forward"])
    assert (
        isinstance(dict(forward.statements)["Y"], AddMM)
        and str(dict(forward.statements)["Y"]) == "addmm(b, X, Wᵀ)"
    )
    assert "Y = torch.addmm(b, X, W.T)" in backends["torch"].print_kernel(kernels["linear_forward"])
    assert not any("addmm" in line for line in backends["numpy"].print_kernel(kernels["linear_forward"]))
    # batch norm's backward DX = Σ cᵢ·Fᵢ: a chain of addcmul, chosen on the IR
    backward = TORCH_IDIOMS(kernels["batch_norm_backward"])
    assert any(isinstance(node, AddCMul) for _, node in backward.statements)
    assert any(
        "torch.addcmul(" in line for line in backends["torch"].print_kernel(kernels["batch_norm_backward"])
    )


def test_relu_backward_takes_threshold_backward_from_a_torch_pass(loaded_specs):
    """The mask `DY where Z > 0, else 0` is a ThresholdBackward node chosen on the IR by the torch idioms pass;
    the printer only spells it, and NumPy (which has no such pass) prints the map."""
    from batchform.codegen.backends import all_backends
    from batchform.codegen.backends.torch.idioms import TORCH_IDIOMS, ThresholdBackward
    from batchform.codegen.pipeline import kernels_of

    backends = all_backends()
    kernel = next(k for family in kernels_of([loaded_specs["relu"]]) for k in family.kernels
                  if k.name == "relu_backward")
    chosen = TORCH_IDIOMS(kernel)
    nodes = [n for _, node in chosen.statements for n in ir.walk(node)]
    assert any(isinstance(n, ThresholdBackward) and n.bound == 0 for n in nodes), [str(n) for n in nodes]
    assert not any(isinstance(n, ThresholdBackward) for _, node in kernel.statements for n in ir.walk(node))
    assert any("torch.ops.aten.threshold_backward(" in line for line in backends["torch"].print_kernel(kernel))
    assert not any("threshold_backward" in line for line in backends["numpy"].print_kernel(kernel))


def test_cpp_loop_fusion_is_decided_from_the_statements_reads_and_writes():
    """fuse_folds keeps a fold that reads another's result apart; fuse_row_loops moves only row invariants
    that read nothing the first loop writes (decided from the nodes' fields, not from printed text)."""
    from batchform.codegen.backends.cpp.loop_fusion import fuse_folds, fuse_row_loops
    from batchform.codegen.backends.cpp.statements import (
        Declare, Extent, Fold, FoldGroup, Line, RowAssign, RowInvariantLet, RowLoop,
    )

    rows = Extent(N, K)
    a = Fold("a", "sum", rows, (), "X.row(i).array()", frozenset({"X"}))
    b = Fold("b", "sum", rows, (), "Y.row(i).array()", frozenset({"Y"}))
    reads_a = Fold("c", "sum", rows, (), "X.row(i).array() * q", frozenset({"X", "a"}))
    fused = fuse_folds([a, b, reads_a])
    assert fused == [FoldGroup((a, b)), reads_a]
    assert fuse_folds([a, Fold("m", "max", rows, (), "X.row(i).array()", frozenset({"X"}))])[0] == a
    first = RowLoop(rows, (RowAssign("Z", "=", "X.row(i).array()"),), frozenset({"X"}))
    second = RowLoop(rows, (RowAssign("Y", "=", "Z.row(i).array()"),), frozenset({"Z"}))
    declare, invariant = Declare("Y", "N", "K"), RowInvariantLet("r", "b.array()", frozenset({"b"}))
    assert fuse_row_loops([first, declare, invariant, second]) == [
        declare, invariant, RowLoop(rows, first.body + second.body, frozenset({"X", "Z"}))]
    # a row invariant reading what the first loop writes, a whole-matrix line, another extent: kept apart
    reads_z = RowInvariantLet("r", "Z.row(0).array()", frozenset({"Z"}))
    assert fuse_row_loops([first, reads_z, second]) == [first, reads_z, second]
    gemm = Line('gemm<S>(S(1), X, false, W, true, S(0), Y, "k");')
    assert fuse_row_loops([first, gemm, second]) == [first, gemm, second]
    other = RowLoop(Extent(N, N), second.body, second.reads)
    assert fuse_row_loops([first, other]) == [first, other]


def test_cpp_declares_its_passes_and_hoists_an_updates_row_invariants(loaded_specs):
    """The C++ backend lists its kernel and statement passes; batch norm's running variance Σ (X − Σ X/N)²
    reads −Σ X/N from a RowInvariant computed once, not per row."""
    from batchform.codegen.backends import all_backends
    from batchform.codegen.backends.cpp.row_invariants import HOIST_ROW_INVARIANTS, RowInvariant
    from batchform.codegen.pipeline import kernels_of

    cpp = all_backends()["cpp"]
    assert [p.name for p in cpp.passes] == ["hoist_row_invariants"]
    assert [p.name for p in cpp.statement_passes] == ["fuse_folds", "fuse_row_loops"]
    kernel = next(k for family in kernels_of([loaded_specs["simple_batch_norm_statistics"]]) for k in family.kernels
                  if k.name == "simple_batch_norm_statistics_update")
    hoisted = [node for _, node in HOIST_ROW_INVARIANTS(kernel).statements if isinstance(node, RowInvariant)]
    assert len(hoisted) == 1 and hoisted[0].shape[0] == 1
    body = cpp.print_kernel(kernel)
    name = next(line.split()[2] for line in body if line.startswith("const RowArray<S>"))
    assert any(f"(X.row(i).array() + {name}).square()" in line for line in body), body
