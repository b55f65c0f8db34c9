"""One benchmark case, in its own process: ``python -m bench.case <name> '<config json>' <result.json>``.

Cases: gemm (the torch one records the environment), dense, sparse, memory, batchnorm, scaling (see `bench/__main__.py` for the configurations).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from bench import cases


def gemm(config: dict) -> dict:
    """Float32 GEMM peak of one library (torch.mm or NumPy's matmul) on n×n matrices, best of `repeat`
    (GFLOP/s); the torch process also records the environment."""
    library, out = config["library"], {}
    if library == "torch":
        import torch
    for n in config["sizes"]:
        rng = np.random.default_rng(0)
        A, B = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        if library == "torch":
            A, B = torch.from_numpy(A), torch.from_numpy(B)
        times = []
        for _ in range(2 + config["repeat"]):  # two warm-ups
            t0 = time.perf_counter()
            A @ B
            times.append(time.perf_counter() - t0)
        out[f"{'torch.mm' if library == 'torch' else 'numpy'} {n}³"] = 2.0 * n**3 / min(times[2:]) / 1e9
    return {"gflops": out, **({"env": cases.environment()} if library == "torch" else {})}


def dense(config: dict) -> dict:
    sizes, batch = config["sizes"], config["batch"]
    X, labels, T, weights = cases.dense_data(sizes, batch)
    steps = {name: cases.DENSE[name](X, labels, T, weights) for name in config["competitors"]}
    result = {
        "timing": cases.time_alternating(steps, config["rounds"], config["warmup"], config["budget_s"]),
        "flops": cases.dense_flops(sizes, batch),
    }
    if "batchform-torch" in steps:  # what computing the first layer's unused DX = DZ·W costs in torch
        import torch

        DZ, W = torch.randn(batch, sizes[1]), torch.from_numpy(weights[0][0])
        result["first_dx_ms"] = cases.time_alternating({"dx": lambda: DZ @ W}, 20, 3)["dx"]["ms"]
    if (
        "batchform-cpp" in steps
    ):  # the first layer's three GEMMs, Eigen (the C++ kernels') against torch (MKL)
        result["layer1_gemms_ms"] = layer1_gemms(sizes, batch)
    result["compiled_flops"] = {
        name: getattr(cases.DENSE[name], "compiled_flops", None)
        for name in ("batchform-jax", "jax-grad-jit")
        if name in steps
    }
    result["kernels"] = {
        name: step.kernels_used() for name, step in steps.items() if hasattr(step, "kernels_used")
    }
    if config.get("profile"):
        kinds = {
            "batchform-torch": "torch",
            "torch-autograd": "torch",
            "nerva-torch": "torch",
            "batchform-cpp": "batchform.generated.cpp",
            "batchform-numpy": "batchform.generated.numpy",
        }
        result["profile"] = {
            name: cases.profile_step(steps[name], kind) for name, kind in kinds.items() if name in steps
        }
    return result


def layer1_gemms(sizes: list[int], batch: int) -> dict:
    """X·Wᵀ, DZᵀ·X and DZ·W of the first layer into preallocated outputs: batchform::gemm (Eigen + OpenMP, what
    the generated C++ kernels compute with) against torch.mm, alternated (ms)."""
    import torch

    from batchform.cpp_module import load

    cpp, rng = load(), np.random.default_rng(0)
    D, K = sizes[0], sizes[1]
    X, W = rng.standard_normal((batch, D), dtype=np.float32), rng.standard_normal((K, D), dtype=np.float32)
    DZ = rng.standard_normal((batch, K), dtype=np.float32)
    Z, DW, DX = (
        np.empty((batch, K), np.float32),
        np.empty((K, D), np.float32),
        np.empty((batch, D), np.float32),
    )
    tX, tW, tDZ, tZ, tDW, tDX = map(torch.from_numpy, (X, W, DZ, Z.copy(), DW.copy(), DX.copy()))

    def eigen():
        cpp.gemm(X, W, Z, trans_b=True)
        cpp.gemm(DZ, X, DW, trans_a=True)
        cpp.gemm(DZ, W, DX)

    def mkl():
        torch.mm(tX, tW.T, out=tZ)
        torch.mm(tDZ.T, tX, out=tDW)
        torch.mm(tDZ, tW, out=tDX)

    times = cases.time_alternating({"eigen": eigen, "torch": mkl}, 20, 3)
    return {k: v["ms"] for k, v in times.items()}


def sparse(config: dict) -> dict:
    """C++ sparse training step at one density against the dense PyTorch autograd step (timing)."""
    sizes, batch, density = config["sizes"], config["batch"], config["density"]
    X, labels, T, weights = cases.dense_data(sizes, batch)
    factory = cases.cpp_sparse(density)
    steps = {
        "cpp-sparse": factory(X, labels, T, sizes),
        "torch-autograd": cases.torch_autograd(X, labels, T, weights),
    }
    result = {
        "timing": cases.time_alternating(steps, config["rounds"], config["warmup"], config["budget_s"]),
        "nnz": factory.nnz,
        "layer_densities": factory.densities,
    }
    if config.get("profile"):
        result["profile"] = {"cpp-sparse": cases.profile_step(steps["cpp-sparse"], "batchform.generated.cpp")}
    return result


def memory(config: dict) -> dict:
    """Memory of one competitor alone in this process: RSS after imports, then its data, model and `steps`
    training steps; the peak (VmHWM, reset after building) minus the RSS after imports."""
    competitor, sizes, batch = config["competitor"], config["sizes"], config["batch"]
    if competitor == "torch-autograd":
        import torch  # noqa: F401
    else:
        import batchform.generated.cpp  # noqa: F401
    after_imports = cases.memory_now()["VmRSS"]
    X, labels, T, _ = cases.dense_data(sizes, batch, with_weights=False)
    if competitor == "torch-autograd":
        step = cases.torch_autograd(X, labels, T, None, sizes)
    else:
        step = cases.cpp_sparse(config["density"])(X, labels, T, sizes)
    built = cases.memory_now()["VmRSS"]
    reset = cases.reset_peak_memory()
    for _ in range(config["steps"]):
        step()
    now = cases.memory_now()
    return {
        "after_imports_mb": after_imports,
        "built_mb": built - after_imports,
        "peak_mb": now["VmHWM"] - after_imports,
        "peak_reset": reset,
    }


def batchnorm(config: dict) -> dict:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((config["N"], config["K"]), dtype=np.float32)
    DY = rng.standard_normal((config["N"], config["K"]), dtype=np.float32)
    steps = {name: cases.BATCH_NORM[name](X, DY) for name in config["competitors"]}
    result = {"timing": cases.time_alternating(steps, config["rounds"], config["warmup"], config["budget_s"])}
    if "batchform-torch-compile" in steps:
        result["compile_s"] = cases.batch_norm_compiled.compile_s
    kinds = {
        "batchform-torch": "torch",
        "batchform-torch-kernels": "torch",
        "batchform-cpp": "batchform.generated.cpp",
        "batchform-numpy": "batchform.generated.numpy",
    }
    result["profile"] = {
        name: cases.profile_step(steps[name], kinds[name]) for name in steps if name in kinds
    }
    return result


def scaling(config: dict) -> dict:
    """Milliseconds per sample of the dense step (net [K, hidden, 10]) and of batch norm forward + backward,
    per competitor, as the batch N grows (K fixed) and as the width K grows (N fixed)."""
    names = config["competitors"]
    dense_names = [n for n in names if n in cases.DENSE]
    bn_names = [n for n in names if n in cases.BATCH_NORM]
    rounds, warmup, budget = config["rounds"], config["warmup"], config["budget_s"]
    out = {"dense_batch": {}, "dense_width": {}, "bn_batch": {}, "bn_width": {}, "flops": {}}

    def dense_point(key, sizes, batch):
        X, labels, T, weights = cases.dense_data(sizes, batch)
        steps = {n: cases.DENSE[n](X, labels, T, weights) for n in dense_names}
        timing = cases.time_alternating(steps, rounds, warmup, budget)
        out[key][str(batch if key == "dense_batch" else sizes[0])] = {n: t["ms"] / batch for n, t in timing.items()}
        out["flops"][f"{key} {batch if key == 'dense_batch' else sizes[0]}"] = cases.dense_flops(sizes, batch) / batch

    def bn_point(key, N, K):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((N, K), dtype=np.float32)
        DY = rng.standard_normal((N, K), dtype=np.float32)
        steps = {n: cases.BATCH_NORM[n](X, DY) for n in bn_names}
        timing = cases.time_alternating(steps, rounds, warmup, budget)
        out[key][str(N if key == "bn_batch" else K)] = {n: t["ms"] / N for n, t in timing.items()}

    hidden, width = config["hidden"], config["widths"]
    for N in config["batches"]:
        dense_point("dense_batch", [hidden, hidden, 10], N)
        if N > 1:  # one sample has no batch statistics
            bn_point("bn_batch", N, config["bn_width"])
    for K in width:
        dense_point("dense_width", [K, hidden, 10], config["batch"])
        bn_point("bn_width", config["bn_batch"], K)
    return out


def parallel(config: dict) -> dict:
    """Samples per second of `batchform train` in 1 and more torch processes (--nproc) and JAX host devices
    (--devices) on one synthetic data set: the time of the last epoch's steps, as the command reports it
    (evaluation excluded), each run a fresh command with OMP_NUM_THREADS=1 (one thread per torch process, as
    torchrun sets it: P processes use P cores). Same global batches, same curve, by construction."""
    import os
    import subprocess
    import tempfile

    sizes, samples = config["sizes"], config["samples"]
    rng = np.random.default_rng(0)
    labels = rng.integers(0, sizes[-1], samples)
    labels[: sizes[-1]] = np.arange(sizes[-1])  # every class present
    test = min(100, samples)
    data = {"Xtrain": rng.standard_normal((samples, sizes[0]), dtype=np.float32), "Ttrain": labels,
            "Xtest": rng.standard_normal((test, sizes[0]), dtype=np.float32), "Ttest": labels[:test]}
    out: dict = {"samples": samples, "sizes": sizes, "batch": config["batch"], "runs": {}}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "data.npz")
        np.savez(path, **data)
        for backend, option in (("torch", "--nproc"), ("jax", "--devices")):
            for count in config["counts"]:
                command = [sys.executable, "-m", "batchform.cli", "train", "--backend", backend, "--dataset", path,
                           "--layer-sizes", ",".join(map(str, sizes)), "--layers",
                           "ReLU;" * (len(sizes) - 2) + "Linear", "--optimizers", "GradientDescent",
                           "--batch-size", str(config["batch"]), "--epochs", str(config["epochs"]),
                           "--no-progress", option, str(count)]
                times = []
                for _ in range(config.get("repeats", 1)):  # the quickest of a few fresh commands
                    proc = subprocess.run(command, capture_output=True, text=True, check=False,
                                          env={**os.environ, "OMP_NUM_THREADS": "1"})
                    if proc.returncode != 0:
                        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr}")
                    rows = [line.split() for line in proc.stdout.splitlines() if line.split()
                            and line.split()[0] == str(config["epochs"])]
                    times.append(float(rows[-1][4]))
                out["runs"][f"{backend} {option} {count}"] = {"seconds": min(times), "samples_per_s":
                                                              samples / min(times), "all_seconds": times}
    return out


def attention(config: dict) -> dict:
    """Self-attention forward + backward at one sequence length N (bench/attention.py runs every N)."""
    if config.get("threads"):  # the same number for torch and the C++ module (they share one libgomp)
        import torch

        from batchform.cpp_module import load

        torch.set_num_threads(config["threads"])
        if "batchform-cpp" in config["competitors"]:
            load().set_num_threads(config["threads"])
    data = cases.attention_data(config["N"], config["D"], config["E"])
    steps = {name: cases.ATTENTION[name](data) for name in config["competitors"]}
    return {"timing": cases.time_alternating(steps, config["rounds"], config["warmup"], config["budget_s"])}


CASES = {"gemm": gemm, "dense": dense, "sparse": sparse, "memory": memory, "batchnorm": batchnorm,
         "scaling": scaling, "parallel": parallel, "attention": attention}


def main(argv: list[str]) -> int:
    name, config, out = argv[0], json.loads(argv[1]), argv[2]
    started = time.perf_counter()
    result = CASES[name](config)
    result["wall_s"] = time.perf_counter() - started
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
