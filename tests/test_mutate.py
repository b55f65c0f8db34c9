"""`batchform mutate` on a small fast sample: every non-equivalent mutant is killed by the proof alone, and
equivalent and ill-formed mutants are recognised as such. The full run (`batchform mutate`): docs/proofs.md."""

from __future__ import annotations

from batchform.codegen.verify import mutate
from batchform.codegen.load.loader import load_all  # noqa: F401  (the fixture loads the specs)

SAMPLE = ("linear", "leaky_relu", "hard_sigmoid", "relu_layer", "squared_error_loss", "nesterov")


def test_sampled_mutants_are_killed_by_the_proof(loaded_specs):
    outcomes = mutate.run([loaded_specs[n] for n in SAMPLE], per_spec=1, seed=3, jobs=1)
    families = {o.mutant.family for o in outcomes if o.verdict in ("killed", "survived")}
    assert len(families) >= 8, families
    survivors = [f"{o.mutant.spec}.{o.mutant.equation}: {o.mutant.description}" for o in outcomes
                 if o.verdict == "survived"]
    assert not survivors
    assert mutate.summary(outcomes)[-1][-1] == 100.0


def test_every_family_proposes_mutants(loaded_specs):
    found = {m.family for n in ("linear", "relu_layer", "squared_error_loss")
             for m in mutate.mutants(loaded_specs[n])}
    assert found == set(mutate.FAMILIES)


def test_equivalent_and_ill_formed_mutants_are_recognised(loaded_specs):
    relu = loaded_specs["relu"]
    (swap,) = [m for m in mutate.mutants(relu) if m.description == "Hadamard operands swapped"]
    assert mutate.judge(relu, swap).verdict == "equivalent"
    linear = loaded_specs["linear"]
    dropped = [m for m in mutate.mutants(linear) if m.family == "drop transpose"]
    assert dropped and all(mutate.judge(linear, m).verdict == "ill-formed" for m in dropped)


def test_a_wrong_mutant_is_not_called_equivalent(loaded_specs):
    leaky = loaded_specs["leaky_relu"]
    (strict,) = [m for m in mutate.mutants(leaky) if m.family == "comparison" and "→ x < 0" in m.description]
    assert not mutate._equivalent(leaky, strict)  # differs at x = 0 only
    assert mutate.judge(leaky, strict).verdict == "killed"


def test_mutate_command(capsys):
    from batchform import cli

    assert cli.main(["mutate", "relu", "--jobs", "1", "--fail-under", "98"]) == 0
    out = capsys.readouterr().out
    assert "kill rate" in out and "0 non-equivalent survivor(s)" in out
    assert cli.main(["mutate", "no_such_spec"]) == 2
    assert "unknown spec no_such_spec" in capsys.readouterr().err
