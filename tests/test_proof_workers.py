"""The proofs of a run share one pool of forked workers (codegen/verify/workers.py, every_proof.py), and the
explicit check substitutes each shared sub-expression once (proof.substitute): same results, less time."""

from __future__ import annotations

import functools
import os
import random

import pytest
import sympy

from batchform.codegen.verify import every_proof, proof, tangent_proof, workers
from batchform.codegen.verify.workers import Task


@pytest.fixture
def forking(monkeypatch):
    """The pool forks even in a test process that has imported TensorFlow: these tasks never touch it."""
    monkeypatch.setattr(workers, "fork_is_safe", lambda: True)


def test_every_task_ends_once_in_a_worker(forking):
    parent = os.getpid()
    tasks = [Task(f"t{k}", cost=k, run=lambda k=k: (k * k, os.getpid())) for k in range(6)]
    ended: dict = {}
    workers.run(tasks, 2, lambda key, result: ended.setdefault(key, []).append(result))
    assert sorted(ended) == [f"t{k}" for k in range(6)]
    assert all(len(results) == 1 and results[0][0] == int(key[1:]) ** 2 for key, results in ended.items())
    assert all(pid != parent for _, pid in (r[0] for r in ended.values()))  # run in the workers


def test_a_worker_that_dies_leaves_its_tasks_to_this_process(forking, capsys):
    parent = os.getpid()

    def dies_in_a_worker():
        if os.getpid() != parent:
            os._exit(3)
        return "here"

    tasks = [Task("dies", 10, dies_in_a_worker), *(Task(f"t{k}", 1, lambda k=k: k) for k in range(3))]
    ended: dict = {}
    workers.run(tasks, 2, ended.__setitem__)
    assert ended["dies"] == "here" and {ended[f"t{k}"] for k in range(3)} == {0, 1, 2}
    assert "a proof worker died" in capsys.readouterr().err


def test_one_job_runs_here_in_order():
    order = []
    workers.run([Task(f"t{k}", k, lambda k=k: order.append(k)) for k in range(3)], 1, lambda *_: None)
    assert order == [0, 1, 2]


def test_the_pool_proves_what_one_process_proves(loaded_specs, tmp_path, monkeypatch, forking):
    specs = [loaded_specs[name] for name in ("sigmoid_layer", "relu", "linear")]
    monkeypatch.setattr(proof, "CACHE", tmp_path / "proofs")
    monkeypatch.setattr(tangent_proof, "CACHE", tmp_path / "tangents")
    pooled, pooled_tangents = every_proof.prove_everything(specs, use_cache=True, jobs=2)
    serial = proof.prove_all(specs, use_cache=False, jobs=1)
    serial_tangents = tangent_proof.prove_all_tangents(specs, use_cache=False, jobs=1)

    def same(a, b):
        return [(p.name, p.equations, p.shapes) for p in a] == [(p.name, p.equations, p.shapes) for p in b]

    assert same(pooled, serial) and all(p.ok for p in pooled)
    assert [(t.spec, t.method, t.detail) for t in pooled_tangents] == \
        [(t.spec, t.method, t.detail) for t in serial_tangents]
    assert len(pooled_tangents) == sum(s.tangents is not None for s in specs) > 0
    # each result was cached as it ended: the second run proves nothing
    again, again_tangents = every_proof.prove_everything(specs, use_cache=True, jobs=2)
    assert all(p.cached for p in again) and all(t.cached for t in again_tangents)


def test_substitute_is_xreplace_with_shared_maxima():
    """A softmax-like matrix whose entries share each row's maximum and sum, at random rational and irrational
    points: every entry as xreplace gives it."""
    x = sympy.Matrix(2, 3, lambda i, j: sympy.Symbol(f"x_{i}_{j}", real=True))
    rows = []
    for i in range(2):
        m = sympy.Max(*x.row(i))
        total = sum(sympy.exp(v - m) for v in x.row(i))
        rows.append([sympy.exp(v - m) / total + m * v for v in x.row(i)])
    y = sympy.Matrix(rows)
    rng = random.Random(4)
    for scale in (1, sympy.sqrt(3)):
        point = {s: sympy.Rational(rng.randint(-9, 9), rng.randint(1, 7)) * scale for s in x}
        assert proof.substitute(y, point) == y.xreplace(point)
        assert proof.substitute(y[0, 1], point) == y[0, 1].xreplace(point)


def test_where_fork_is_not_safe_the_workers_start_afresh(monkeypatch):
    """(A test process that has imported TensorFlow.) Each task is pickled to a fresh process; one that cannot
    be pickled runs here instead, and so does one that fails there, raising its own error here."""
    monkeypatch.setattr(workers, "fork_is_safe", lambda: False)
    parent = os.getpid()
    tasks = [Task("pid", 3, os.getpid), Task("square", 2, functools.partial(pow, 7, 2)),
             Task("local", 1, lambda: "here")]  # a lambda cannot be pickled
    ended: dict = {}
    workers.run(tasks, 2, ended.__setitem__)
    assert ended["pid"] != parent and ended["square"] == 49 and ended["local"] == "here"
    with pytest.raises(ZeroDivisionError):
        workers.run([Task("fails", 1, functools.partial(divmod, 1, 0)), Task("ok", 1, os.getpid)], 2,
                    lambda *_: None)
