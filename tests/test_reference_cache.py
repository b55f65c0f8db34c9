"""SymPy's values of a spec (codegen.verify.execute.reference: what generate's run check and build-cpp's check
compare every kernel with) are evaluated once and cached beside the proofs, keyed by the spec's equations."""

from __future__ import annotations

import numpy as np
import pytest
from batchform.codegen.load.loader import load_all
from batchform.codegen.verify import execute


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    from batchform.codegen.verify import proof

    monkeypatch.setattr(proof, "CACHE", tmp_path / "proofs")
    return tmp_path / "references"


def test_a_spec_is_evaluated_once_then_read_from_the_cache(own_cache, monkeypatch):
    (relu,) = [s for s in load_all() if s.name == "relu_layer"]
    dims = execute.SHAPES[0]
    inputs, values = execute.reference(relu, dims, seed=0)
    assert len(list(own_cache.glob("*.pickle"))) == 1

    def no_evaluation(*args):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(execute, "_evaluated", no_evaluation)
    again_inputs, again_values = execute.reference(relu, dims, seed=0)
    assert again_inputs.keys() == inputs.keys() and again_values.keys() == values.keys()
    for name, value in values.items():
        np.testing.assert_array_equal(again_values[name], value)
    with pytest.raises(AssertionError, match="evaluated again"):  # another seed is another entry
        execute.reference(relu, dims, seed=1)


def test_another_spec_or_shape_has_its_own_entry(own_cache):
    specs = {s.name: s for s in load_all() if s.name in ("relu_layer", "leaky_relu_layer")}
    paths = {execute._reference_path(specs["relu_layer"], execute.SHAPES[0], 0),
             execute._reference_path(specs["leaky_relu_layer"], execute.SHAPES[0], 0),
             execute._reference_path(specs["relu_layer"], execute.SHAPES[1], 0)}
    assert len(paths) == 3


def test_an_unreadable_entry_is_evaluated_again(own_cache):
    (relu,) = [s for s in load_all() if s.name == "relu_layer"]
    path = execute._reference_path(relu, execute.SHAPES[0], 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a pickle")
    inputs, values = execute.reference(relu, execute.SHAPES[0], 0)
    assert "Y" in values and "X" in inputs
