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
