"""Every training option is checked up front: one `error:` line and exit 2, never a traceback, never a value
that is accepted and then ignored or meaningless."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from batchform.cli import REPO, main
from batchform.train import add_arguments, parse_options
from batchform.training.options import OptionError


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


BAD = [
    (["--learning-rate", "MultiStep(0.1;0,10;0.5)"], "milestone"),
    (["--learning-rate", "MultiStep(0.1;10,5;0.5)"], "milestone"),
    (["--learning-rate", "MultiStep(0.1;2.5;0.5)"], "milestone"),
    (["--learning-rate", "StepBased(0.1,0.5,0)"], "change_rate"),
    (["--learning-rate", "StepBased(0.1,0,2)"], "drop_rate"),
    (["--learning-rate", "TimeBased(0.1,-1)"], "decay"),
    (["--learning-rate", "Exponential(0.1,-1)"], "change_rate"),
    (["--learning-rate", "Constant(nan)"], "nan"),
    (["--learning-rate", "Constant(inf)"], "inf"),
    (["--learning-rate", "Constant(1e999)"], "finite"),
    (["--learning-rate", "Constant(0.1,0.2)"], "Constant"),
    (["--init-weights", "Uniform(0,inf)"], "inf"),
    (["--init-weights", "Uniform(-1e308,1e308)"], "Uniform"),
    (["--init-weights", "Zero(1)"], "Zero"),
    (["--init-weights", "XavierNormal(2)"], "XavierNormal"),
    (["--init-weights", "Normal(0,-1)"], "Normal"),
    (["--init-weights", "Bogus"], "Bogus"),
    (["--optimizers", "Momentum(foo=1)"], "foo"),
    (["--optimizers", "Momentum(nan)"], "nan"),
    (["--optimizers", "Nesterov(-1)"], "mu"),
    (["--optimizers", "Momentum(1.5)"], "mu"),
    (["--optimizers", "Momentum"], "Momentum"),
    (["--optimizers", "Momentum(0.9,mu=0.5)"], "mu"),
    (["--optimizers", "GradientDescent(0.1)"], "GradientDescent"),
    (["--optimizers", "Momentum(0.1,0.2;0.3)"], "Momentum"),
    (["--layers", "BatchNorm(1,2,3);Linear"], "BatchNorm"),
    (["--layers", "BatchNorm(-1);Linear"], "BatchNorm"),
    (["--layers", "BatchNorm(0);Linear"], "BatchNorm"),
    (["--layers", "BatchNorm(eps=1);Linear"], "BatchNorm"),
    (["--layers", "LeakyReLU(nan);Linear"], "nan"),
    (["--layers", "LeakyReLU(0.1,0.2;0.3);Linear"], "LeakyReLU"),
    (["--layers", "Dropout(nan);Linear"], "nan"),
    (["--layers", "Dropout(p=0.5);Linear"], "Dropout"),
    (["--layers", "Linear(1)"], "Linear"),
    (["--loss", "SquaredError(1)"], "SquaredError"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**40)], "--seed"),
    (["--layer-sizes", "64,0,10"], "--layer-sizes"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--backend", "fortran"], "fortran"),
]


@pytest.mark.parametrize("argv, word", BAD)
def test_meaningless_option_values_are_rejected_up_front(argv, word):
    with pytest.raises(OptionError) as info:
        parse_options(_args(*argv))
    message = str(info.value)
    assert word in message and "\n" not in message


def test_good_options_parse():
    options = parse_options(_args("--layers", "ReLU;BatchNorm(1e-3);Dropout(0.2);LeakyReLU(0.1);Linear",
                                  "--learning-rate", "MultiStep(0.1;10,20;0.5)", "--optimizers", "Nesterov(0.9)",
                                  "--init-weights", "Uniform(-0.1,0.1)", "--seed", "7"))
    assert options.layers[1].hyperparameters == {"epsilon": 1e-3}
    assert options.scheduler(25) == pytest.approx(0.1 * 0.5 ** 2)  # once per milestone passed (10 and 20)
    assert options.optimizers[0].hyperparameters == {"mu": 0.9}


@pytest.mark.parametrize("text", ["TimeBased(0.1,0)", "TimeBased(0.1,0.5)", "StepBased(0.1,0.5,3)",
                                  "Exponential(0.1,0)", "MultiStep(0.1;3;1)"])
def test_schedules_stay_positive_and_finite_for_many_epochs(text):
    scheduler = parse_options(_args("--learning-rate", text)).scheduler
    values = [scheduler(i) for i in range(60)]  # TimeBased(0.1,0.5) underflows to 0.0 near epoch 200
    assert all(np.isfinite(v) and v > 0 for v in values)


# --- a property over option strings -----------------------------------------------------------------

_NAMES = ["ReLU", "relu", "Linear", "LeakyReLU", "AllReLU", "SReLU", "Sigmoid", "BatchNorm", "Dropout", "Softmax",
          "Momentum", "Nesterov", "GradientDescent", "Constant", "TimeBased", "StepBased", "MultiStep",
          "Exponential", "Uniform", "Normal", "Zero", "XavierNormal", "HeUniform", "SquaredError",
          "StableSoftmaxCrossEntropy", "Bogus", "mu", "x"]
_ATOMS = ["0", "1", "-1", "0.5", "0.9", "2", "10", "1e-5", "-0.0", "nan", "inf", "-inf", "1e999", "1j", "",
          "1e308", "3.7", "x", "mu=0.9", "foo=1", "eta=1", "alpha=0.1", "epsilon=1", "(", ")", "=", ",,", ";"]
_argument = st.lists(st.sampled_from(_ATOMS), max_size=4).map(",".join)
_call = st.builds(lambda n, a, bare: n if bare else f"{n}({';'.join(a)})", st.sampled_from(_NAMES),
                  st.lists(_argument, max_size=3), st.booleans())
_option_text = st.one_of(st.lists(_call, min_size=1, max_size=4).map(";".join), st.text(max_size=12))
_OPTIONS = ["--layers", "--optimizers", "--learning-rate", "--init-weights", "--loss", "--layer-sizes", "--seed",
            "--epochs", "--batch-size"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_OPTIONS), _option_text), max_size=3))
def test_any_option_string_parses_or_is_one_option_error(pairs):
    argv = []
    for option, text in pairs:
        argv += [f"{option}={text}"]
    try:
        namespace = _args(*argv)
    except SystemExit:  # argparse's own one-line usage error (e.g. --seed=x), exit 2
        return
    try:
        options = parse_options(namespace)
    except OptionError as error:
        assert str(error) and "\n" not in str(error)
        return
    for epoch in (0, 1, 5, 50):
        eta = options.scheduler(epoch)
        assert np.isfinite(eta) and eta > 0


@pytest.mark.parametrize("argv", [
    ["--learning-rate", "StepBased(0.1,0.5,0)"],
    ["--seed", "-1"],
])
def test_the_train_command_prints_one_error_line_and_exits_2(argv):
    proc = subprocess.run([sys.executable, "-m", "batchform.cli", "train", "--no-progress", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1, proc.stderr


# --- weight files -----------------------------------------------------------------------------------

def _weights_error(tmp_path, capsys, path) -> str:
    assert main(["train", "--no-progress", "--epochs", "1", "--layers", "ReLU;Linear", "--load-weights",
                 str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    return err


def test_bad_weight_files_are_one_error(tmp_path, capsys):
    npy = tmp_path / "w.npy"
    np.save(npy, np.zeros((3, 3)))
    assert "w.npy" in _weights_error(tmp_path, capsys, npy)
    good = {"W1": np.zeros((64, 64)), "b1": np.zeros((1, 64)), "W2": np.zeros((10, 64)), "b2": np.zeros((1, 10))}
    for key, bad in [("W1", np.full((64, 64), "a")), ("b2", np.zeros((1, 10), complex)),
                     ("W2", np.zeros((10, 64), bool))]:
        path = tmp_path / f"{key}.npz"
        np.savez(path, **(good | {key: bad}))
        assert key in _weights_error(tmp_path, capsys, path)


def _damaged(tmp_path, how: str, compressed: bool):
    """A weights file of the ReLU;Linear network on digits, cut short or with one byte flipped inside W1."""
    good = {"W1": np.random.default_rng(0).random((64, 64)), "b1": np.zeros((1, 64)),
            "W2": np.zeros((10, 64)), "b2": np.zeros((1, 10))}
    path = tmp_path / f"{how}-{compressed}.npz"
    (np.savez_compressed if compressed else np.savez)(path, **good)
    raw = bytearray(path.read_bytes())
    if how == "truncated":
        raw = raw[:len(raw) // 2]
    else:  # a byte of W1's data: the zip directory is intact, the member's CRC (or its deflate stream) is not
        raw[400] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_or_corrupt_weight_files_are_one_error(tmp_path, capsys, how, compressed):
    path = _damaged(tmp_path, how, compressed)
    assert path.name in _weights_error(tmp_path, capsys, path)


def test_build_cpp_without_generated_sources_is_one_error(monkeypatch, capsys, tmp_path):
    from batchform import cpp_build

    monkeypatch.setattr(cpp_build, "GENERATED_DIR", tmp_path / "cpp")
    assert main(["build-cpp"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "batchform generate" in err and "\n" not in err


# --- names --------------------------------------------------------------------------------------------

def test_layers_help_lists_the_spellings_that_parse():
    from batchform.training.options import layers_help, parse_layers

    text = layers_help()
    assert "ReLU" in text and "SReLU" in text and "LeakyReLU(alpha)" in text and "Relu" not in text
    assert "Dropout(p)" in text and "BatchNorm(ε)" in text
    listed = text.split("known: ")[1].split("; BatchNorm(ε)")[0].split(", ")
    for name in listed:
        call = name.replace("(alpha)", "(0.1)").replace("(epsilon)", "(0.001)")
        parse_layers(f"{call};Linear" if name != "Linear" else "Linear")


def test_unknown_names_list_what_is_known():
    from batchform.training.options import parse_layers

    with pytest.raises(OptionError) as info:
        parse_layers("Relu6;Linear")
    assert "ReLU" in str(info.value) and "Dropout(p)" in str(info.value) and "Relu," not in str(info.value)


# --- options validated up front, including the ones that only matter together -------------------------

def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize("argv, words", [
    (["train", "--backend", "torch", "--nproc", "2", "--timeout", "1e20"], ["--timeout", "2147483"]),
    (["train", "--backend", "torch", "--nproc", "2", "--timeout", "1e-9"], ["--timeout", "from 1"]),
    (["train", "--timeout", "30"], ["--timeout", "one process"]),
    (["train", "--backend", "torch", "--nproc", str(_cores() + 1)], [f"--nproc {_cores() + 1}", "core"]),
    (["train", "--prune-interval", "-3"], ["--prune-interval", "at least 1"]),
    (["train", "--prune-interval", "3"], ["--prune-interval", "without --prune"]),
    (["train", "--grow-weights", "Zero"], ["--grow-weights", "without --prune"]),
    (["train", "--layer-sizes", ""], ["--layer-sizes"]),
    (["train", "--save-weights", ""], ["--save-weights", "empty"]),
    (["train", "--load-weights", " "], ["--load-weights", "empty"]),
    (["train", "--export-torch", ""], ["--export-torch", "empty"]),
    (["verify", "--specs", "/nonexistent", "--jobs", "0"], ["--jobs must be at least 1"]),
    (["generate", "--builtin", "--check", "--backend", "numpy", "--out", "{tmp}"], ["--builtin", "--specs"]),
    (["generate", "--check", "--no-report", "--backend", "numpy", "--out", "{tmp}"], ["--no-report", "--check"]),
    (["generate", "--specs", "/nonexistent", "--out", "{tmp}", "--no-report", "--reports", "{tmp}"],
     ["--reports", "--no-report"]),
    (["generate", "--specs", "/nonexistent", "--out", ""], ["--output", "empty"]),
    (["build-cpp", "--out", "{tmp}", "--no-cache"], ["--no-cache", "build-cpp proves nothing"]),
    (["mutate", "no_such_spec", "--seed", "3"], ["--seed", "--sample"]),
    (["mutate", "no_such_spec", "--sample", "0"], ["--sample must be at least 1"]),
    (["mutate", "no_such_spec", "--fail-under", "150"], ["--fail-under", "0 to 100"]),
    (["show", "relu", "--jobs", "2"], ["--jobs", "no effect"]),
])
def test_every_option_is_checked_before_any_work(argv, words, capsys, tmp_path):
    """A value out of range, or an option that does nothing in this command line, is one error and exit 2
    (before, --timeout 1e20 was a torch error, 1e-9 C++ stack frames, and the others were ignored)."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    argv = [*argv[:1], "--no-progress", "--epochs", "1", *argv[1:]] if argv[0] == "train" else argv
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    for word in words:
        assert word in err, err


def test_more_jax_host_devices_than_cores_is_one_error():
    """On the CPU every --devices P is a host device sharing the machine's cores (before, --devices 1000 on 2
    cores trained on without a word)."""
    count = _cores() + 1
    proc = subprocess.run([sys.executable, "-m", "batchform.cli", "train", "--no-progress", "--epochs", "1",
                           "--backend", "jax", "--devices", str(count)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert f"--devices {count}" in proc.stderr and "core" in proc.stderr
