"""Self-attention (spec/layers/attention.py) against torch.nn.functional.scaled_dot_product_attention and its
autograd, in float64: every generated backend's forward and backward kernels, the torch module and its
autograd, multi-head as a sum of generated heads against torch.nn.MultiheadAttention, and the memory rule
(no N × N value but the scores S, the probabilities P and their gradients)."""

from __future__ import annotations

import numpy as np
import pytest

from batchform.generated.manifest import SPECS
from batchform.training.backends import call_kernel, make_backend

torch = pytest.importorskip("torch")
SDPA = torch.nn.functional.scaled_dot_product_attention
N, D, E = 7, 5, 3  # E ≠ D: the head width is a size of its own


def _values(seed: int = 0, n: int = N, d: int = D, e: int = E) -> dict:
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((n, d)), "Wq": rng.standard_normal((e, d)),
            "Wk": rng.standard_normal((e, d)), "Wv": rng.standard_normal((e, d)),
            "Wo": rng.standard_normal((d, e)), "DY": rng.standard_normal((n, d))}


def _reference(values: dict) -> dict:
    """Y = SDPA(X·W_qᵀ, X·W_kᵀ, X·W_vᵀ)·W_oᵀ and the gradients of Σ DY ⊙ Y by torch's autograd."""
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in values.items() if k != "DY"}
    X, Wq, Wk, Wv, Wo = (leaves[k] for k in ("X", "Wq", "Wk", "Wv", "Wo"))
    Y = SDPA(X @ Wq.T, X @ Wk.T, X @ Wv.T) @ Wo.T
    Y.backward(torch.tensor(values["DY"]))
    return {"Y": Y.detach().numpy(), **{f"D{k}": v.grad.numpy() for k, v in leaves.items()}}


def test_the_spec_is_built_in_with_its_derived_backward():
    info = SPECS["self_attention"]
    assert info.parameters == {"Wq": ("E", "D"), "Wk": ("E", "D"), "Wv": ("E", "D"), "Wo": ("D", "E")}
    forward, backward = info.kernels[0], info.kernels[1]
    assert forward.arguments == ("X", "Wq", "Wk", "Wv", "Wo") and "Y" in forward.returns
    assert set(backward.returns) == {"DWq", "DWk", "DWv", "DWo", "DX"}


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "tensorflow", "cpp"])
def test_every_backend_matches_sdpa_and_its_autograd(backend):
    if backend == "cpp":
        pytest.importorskip("batchform.generated.cpp._batchform_cpp", reason="the C++ module is not built")
    elif backend != "numpy":
        pytest.importorskip(backend)
    values = _values()
    truth = _reference(values)
    arrays = make_backend(backend, np.float64)
    forward, backward = SPECS["self_attention"].kernels[:2]
    given = {k: arrays.array(v) for k, v in values.items()}
    out = call_kernel(arrays, forward, given)
    np.testing.assert_allclose(arrays.numpy(out["Y"]), truth["Y"], rtol=1e-12, atol=1e-12)
    gradients = call_kernel(arrays, backward, {**given, **out})
    for name in ("DX", "DWq", "DWk", "DWv", "DWo"):
        np.testing.assert_allclose(arrays.numpy(gradients[name]), truth[name], rtol=1e-11, atol=1e-11,
                                   err_msg=f"{backend}: {name}")


def test_large_scores_do_not_overflow():
    """The softmax is shifted by its row maxima: scores of several hundred give SDPA's values, not NaN."""
    values = _values(1)
    values["Wq"] = values["Wq"] * 30
    values["Wk"] = values["Wk"] * 30
    truth = _reference(values)
    arrays = make_backend("numpy", np.float64)
    forward, backward = SPECS["self_attention"].kernels[:2]
    scores = (values["X"] @ values["Wq"].T) @ (values["X"] @ values["Wk"].T).T / np.sqrt(E)
    assert np.abs(scores).max() > 800  # e^800 overflows float64
    out = call_kernel(arrays, forward, values)
    np.testing.assert_allclose(out["Y"], truth["Y"], rtol=1e-10, atol=1e-10)
    gradients = call_kernel(arrays, backward, {**values, **out})
    np.testing.assert_allclose(gradients["DX"], truth["DX"], rtol=1e-8, atol=1e-8)


def test_the_torch_module_is_sdpa_under_autograd():
    from batchform.generated.torch.modules import SelfAttention

    values = _values(2)
    truth = _reference(values)
    layer = SelfAttention(D, E, dtype=torch.float64)
    with torch.no_grad():
        for name in ("Wq", "Wk", "Wv", "Wo"):
            getattr(layer, name).copy_(torch.tensor(values[name]))
    X = torch.tensor(values["X"], requires_grad=True)
    Y = layer(X)
    Y.backward(torch.tensor(values["DY"]))
    np.testing.assert_allclose(Y.detach().numpy(), truth["Y"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(X.grad.numpy(), truth["DX"], rtol=1e-11, atol=1e-11)
    for name in ("Wq", "Wk", "Wv", "Wo"):
        np.testing.assert_allclose(getattr(layer, name).grad.numpy(), truth[f"D{name}"], rtol=1e-11, atol=1e-11)
    assert torch.autograd.gradcheck(lambda x: layer(x), (X.detach().clone().requires_grad_(),))


def test_a_batch_of_sequences_is_not_flattened_into_one():
    """Attention reads its rows together: a (batch, tokens, D) input is refused with an error naming the layer
    and the shape, not silently attended across sequences."""
    from batchform.generated.torch.modules import SelfAttention

    layer = SelfAttention(D, E, dtype=torch.float64)
    with pytest.raises((ValueError, TypeError), match="SelfAttention"):
        layer(torch.zeros(2, N, D, dtype=torch.float64))


def test_only_scores_and_probabilities_are_n_by_n():
    """The kernels' N × N values are the scores Z, the probabilities P and their gradients — in the forward
    kernel Z, exp(Z − rows_max(Z)·1ᵀ) (the softmax's numerator) and P; in the backward kernel DP = DO·Vᵀ (a
    temporary) and DZ — nothing else: no diag(DP·Pᵀ) (an N × N product), no N × N matrix of ones."""
    from batchform.codegen.load.loader import load_all
    from batchform.codegen.pipeline import kernels_of

    loaded = [s for s in load_all() if s.name == "self_attention"]
    kernels = {k.name: k for family in kernels_of(loaded) for k in family.kernels}
    square = {name: [t for t, node in kernels[name].statements if tuple(map(str, node.shape)) == ("N", "N")]
              for name in ("self_attention_forward", "self_attention_backward")}
    forward, backward = square["self_attention_forward"], square["self_attention_backward"]
    assert len(forward) == 3 and {"Z", "P"} <= set(forward), forward
    assert len(backward) == 2 and "DZ" in backward, backward
    assert "P" in kernels["self_attention_forward"].returns  # saved for backward, as autograd's math path does


def test_multi_head_is_torchs_multihead_attention():
    """H generated heads summed (concat(O_h)·W_oᵀ = Σ_h O_h·W_o,hᵀ) are nn.MultiheadAttention(bias=False):
    values, and gradients of its in_proj and out_proj weights and of the input."""
    from batchform.runtime.torch.attention import MultiHeadSelfAttention

    torch.manual_seed(0)
    Dm, H, n = 6, 3, 5
    reference = torch.nn.MultiheadAttention(Dm, H, bias=False, dtype=torch.float64)
    ours = MultiHeadSelfAttention(Dm, H, dtype=torch.float64)
    ours.load_torch_state_dict(reference.state_dict())
    X = torch.randn(n, Dm, dtype=torch.float64)
    DY = torch.randn(n, Dm, dtype=torch.float64)
    X1, X2 = X.clone().requires_grad_(), X.clone().requires_grad_()
    Y_ref = reference(X1, X1, X1, need_weights=False)[0]
    Y = ours(X2)
    torch.testing.assert_close(Y, Y_ref, rtol=1e-12, atol=1e-12)
    Y_ref.backward(DY)
    Y.backward(DY)
    torch.testing.assert_close(X2.grad, X1.grad, rtol=1e-11, atol=1e-11)
    grads = ours.torch_state_dict(gradients=True)
    torch.testing.assert_close(grads["in_proj_weight"], reference.in_proj_weight.grad, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(grads["out_proj.weight"], reference.out_proj.weight.grad, rtol=1e-11, atol=1e-11)
    batch = torch.randn(2, n, Dm, dtype=torch.float64)  # (batch, tokens, D): one sequence at a time
    torch.testing.assert_close(ours(batch), reference(batch.transpose(0, 1), batch.transpose(0, 1),
                                                      batch.transpose(0, 1), need_weights=False)[0].transpose(0, 1),
                               rtol=1e-12, atol=1e-12)


def test_the_jax_custom_vjp_is_sdpa_under_autograd():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    from batchform.generated.jax.custom_vjp import self_attention

    values = _values(3)
    truth = _reference(values)
    names = ("X", "Wq", "Wk", "Wv", "Wo")
    arrays = [jax.numpy.asarray(values[k]) for k in names]
    Y, pullback = jax.vjp(self_attention, *arrays)
    np.testing.assert_allclose(np.asarray(Y), truth["Y"], rtol=1e-12, atol=1e-12)
    for name, gradient in zip(names, pullback(jax.numpy.asarray(values["DY"]))):
        np.testing.assert_allclose(np.asarray(gradient), truth[f"D{name}"], rtol=1e-11, atol=1e-11, err_msg=name)


def test_the_keras_layer_is_sdpa_under_a_gradient_tape():
    tf = pytest.importorskip("tensorflow")
    from batchform.generated.tensorflow.keras_layers import SelfAttention

    values = _values(4)
    truth = _reference(values)
    layer = SelfAttention(D, E, dtype="float64")
    X = tf.constant(values["X"])
    layer(X)  # built
    for name in ("Wq", "Wk", "Wv", "Wo"):
        getattr(layer, name).assign(values[name])
    with tf.GradientTape() as tape:
        tape.watch(X)
        Y = layer(X)
    gradients = tape.gradient(Y, [X, layer.Wq, layer.Wk, layer.Wv, layer.Wo], output_gradients=tf.constant(values["DY"]))
    np.testing.assert_allclose(Y.numpy(), truth["Y"], rtol=1e-12, atol=1e-12)
    for name, gradient in zip(("DX", "DWq", "DWk", "DWv", "DWo"), gradients):
        np.testing.assert_allclose(np.asarray(gradient), truth[name], rtol=1e-11, atol=1e-11, err_msg=name)
    with pytest.raises(Exception, match="SelfAttention"):
        layer(tf.zeros((2, N, D), dtype=tf.float64))
