"""Spec loading: every spec of the paper is there, and bad specs get one clear error naming the fault."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from batchform.codegen.errors import SpecError
from batchform.codegen.load.loader import check, load_all
from batchform.dsl import Spec, columns_sum, dims, matrix, row_repeat, scalar

PAPER = {
    "linear", "relu_layer", "leaky_relu_layer", "all_relu_layer", "sigmoid_layer", "hyperbolic_tangent_layer",
    "hard_sigmoid_layer", "srelu_layer", "softmax_layer", "log_softmax_layer", "simple_batch_norm", "batch_norm",
    "batch_norm_eps", "simple_batch_norm_eps", "linear_dropout", "relu_dropout_layer",
    "softmax", "stable_softmax", "log_softmax", "stable_log_softmax",
    "squared_error_loss", "mean_squared_error_loss", "cross_entropy_loss", "softmax_cross_entropy_loss",
    "softmax_cross_entropy_one_hot_loss", "stable_softmax_cross_entropy_loss", "logistic_cross_entropy_loss",
    "negative_log_likelihood_loss", "gradient_descent", "momentum", "nesterov",
}


def test_every_equation_of_the_paper_has_a_spec(loaded_specs):
    assert PAPER <= set(loaded_specs)


def test_srelu_has_gradients_for_its_four_parameters(loaded_specs):
    names = {e.name for e in loaded_specs["srelu_layer"].spec.backward}
    assert {"Dal", "Dtl", "Dar", "Dtr", "DW", "Db", "DX"} <= names


N, D, K = dims("N D K")
X, W, b, DY = matrix("X", N, D), matrix("W", K, D), matrix("b", 1, K), matrix("DY", N, K)


def _linear(**changes):
    base = dict(name="lin", kind="layer", doc="", inputs=(X,), parameters=(W, b),
                forward={"Y": X * W.T + row_repeat(b, N)}, backward={"DW": DY.T * X, "DX": DY * W})
    base.update(changes)
    return Spec(**base)


@pytest.mark.parametrize("spec, words", [
    (_linear(forward={"Y": X * W + b}), ["'lin'", "forward equation Y", "shape mismatch", "product"]),
    (_linear(forward={"Y": X * W.T + X}), ["'lin'", "equation Y", "shape mismatch", "sum"]),
    (_linear(backward={"DW": DY.T * matrix("Q", N, D)}), ["'lin'", "equation DW", "unknown symbol 'Q'"]),
    (_linear(forward={"Y": X * W.T * scalar("alpha")}), ["'lin'", "equation Y", "unknown scalar alpha"]),
    (_linear(name="my layer"), ["'my layer'", "not a valid identifier"]),
    (_linear(forward={"1Y": X * W.T}), ["'lin'", "'1Y'", "not a valid identifier"]),
    (_linear(kind="layr"), ["'lin'", "kind 'layr'"]),
    (_linear(backward={"DW": columns_sum(DY)}), ["'lin'", "equation DW", "gradient of W", "K×D"]),
])
def test_bad_spec_gets_one_clear_error(spec, words):
    with pytest.raises(SpecError) as info:
        check(spec, "test", "test.py")
    message = str(info.value)
    for w in words:
        assert w in message, message
    assert "\n" not in message


def _package(tmp_path, name, body):
    root = tmp_path / name
    (root / "fam").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "fam" / "__init__.py").write_text('"""Test family."""\n')
    (root / "fam" / "broken.py").write_text(textwrap.dedent(body))
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))


def test_a_spec_file_that_fails_to_import_names_file_and_line(tmp_path):
    package = _package(tmp_path, "badspecs_import", """
        from batchform.dsl import dims, hadamard, matrix
        N, D = dims("N D")
        X = matrix("X", N, D)
        Y = hadamard(X, X.T)
        SPECS = []
    """)
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(SpecError) as info:
            load_all(package)
    finally:
        sys.path.remove(str(tmp_path))
    message = str(info.value)
    assert "broken.py:5" in message and "Y = hadamard(X, X.T)" in message and "N×D and a D×N" in message


def test_a_spec_file_without_specs_is_an_error(tmp_path):
    package = _package(tmp_path, "badspecs_empty", "x = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(SpecError, match="defines no SPECS"):
            load_all(package)
    finally:
        sys.path.remove(str(tmp_path))
