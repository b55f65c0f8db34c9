"""A JAX training loop with optax: jax.grad differentiates through the generated custom_vjp functions.

    python examples/jax_optax.py [--steps 200]

Trains 64-32-10 on scikit-learn's digits with optax.adam inside one jitted step and prints the test accuracy.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

from batchform.data import load_digits_dataset
from batchform.generated.jax import custom_vjp as bj


def loss(params, X, T):
    H = bj.relu_layer(X, **params[0])
    return bj.stable_softmax_cross_entropy_loss(bj.linear(H, **params[1]), T) / X.shape[0]


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="optax.adam steps of batch 32 (default: 200)")
    args = parser.parse_args(argv)
    data = load_digits_dataset(seed=0, dtype="float32")
    params = [bj.relu_layer_init(jax.random.PRNGKey(0), 64, 32), bj.linear_init(jax.random.PRNGKey(1), 32, 10)]
    optimizer = optax.adam(1e-2)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state, X, T):
        value, grads = jax.value_and_grad(loss)(params, X, T)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    X, T = jnp.asarray(data.Xtrain), jnp.asarray(data.Ttrain)
    key = jax.random.PRNGKey(2)
    for _ in range(args.steps):
        key, pick = jax.random.split(key)
        rows = jax.random.randint(pick, (32,), 0, X.shape[0])
        params, state, value = step(params, state, X[rows], T[rows])
    H = bj.relu_layer(jnp.asarray(data.Xtest), **params[0])
    predicted = bj.linear(H, **params[1]).argmax(axis=1)
    accuracy = float((predicted == jnp.asarray(data.Ttest).argmax(axis=1)).mean())
    print(f"test accuracy after {args.steps} steps: {accuracy:.3f} (last batch loss {float(value):.4f})")
    return accuracy


if __name__ == "__main__":
    main()
