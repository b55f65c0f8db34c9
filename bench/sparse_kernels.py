"""Micro-benchmark of the C++ sparse kernels (not a test).

Times the three primitives of a sparse linear layer 3072 -> 1024 at batch 100 (float32):

    forward   Y  = X @ S.T + b          csr_matmul_transposed
    backward  DX = DY @ S               dense_matmul_csr
              DW = (DY.T @ X) on S      sampled_matmul

for densities 1%, 5% and 10%, against a dense PyTorch layer forward + backward
(addmm, DY @ W, DY.T @ X, DY.sum(0)) and, for reference, torch.sparse CSR
(sparse.mm + sampled_addmm). Medians of interleaved repetitions; the machines are shared
and noisy, so compare the ratios within one run.

    python bench/sparse_kernels.py [--repeat 30] [--threads N] [--densities 0.01 0.05 0.1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _median_ms(fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 3) -> dict[str, float]:
    for f in fns.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):  # interleaved, so that load changes hit every variant alike
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--inputs", type=int, default=3072)
    p.add_argument("--outputs", type=int, default=1024)
    p.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.10])
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--threads", type=int, default=0, help="threads for C++ and torch (0: default)")
    p.add_argument("--no-build", action="store_true", help="do not (re)build the module first")
    args = p.parse_args(argv)

    if not args.no_build:
        from batchform.cpp_build import build

        build()
    from batchform.cpp_module import load

    m = load()
    try:
        import torch

        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    except ImportError:  # pragma: no cover
        torch = None

    if args.threads > 0:
        m.set_num_threads(args.threads)
        if torch is not None:
            torch.set_num_threads(args.threads)
    m.set_flush_denormals(True)

    N, D, K = args.batch, args.inputs, args.outputs
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D), dtype=np.float32)
    DY = rng.standard_normal((N, K), dtype=np.float32)
    b = rng.standard_normal(K, dtype=np.float32)
    Y = np.empty((N, K), np.float32)
    DX = np.empty((N, D), np.float32)

    info = m.build_info()
    print(
        f"sparse linear layer {D} -> {K}, batch {N}, float32; C++ threads {m.num_threads()}, "
        f"openmp={info['openmp']} mkl={info['mkl']} simd={info['simd']}"
        + (f"; torch {torch.__version__} threads {torch.get_num_threads()}" if torch else "")
    )

    rows = []
    dense_ms = None
    if torch is not None:
        tX, tDY, tb = torch.from_numpy(X), torch.from_numpy(DY), torch.from_numpy(b)
        tW = torch.randn(K, D)

        def dense_step():
            torch.addmm(tb, tX, tW.T)
            tDY @ tW
            tDY.T @ tX
            tDY.sum(0)

        dense_ms = _median_ms({"dense": dense_step}, args.repeat)["dense"]

    # the same dense layer with batchform::gemm (Eigen + OpenMP unless BATCHFORM_BLAS=scipy)
    Wd = rng.standard_normal((K, D), dtype=np.float32)
    DWd = np.empty((K, D), np.float32)

    def cpp_dense_step():
        m.gemm(X, Wd, Y, trans_b=True)
        m.gemm(DY, Wd, DX)
        m.gemm(DY, X, DWd, trans_a=True)

    cpp_dense_ms = _median_ms({"d": cpp_dense_step}, args.repeat)["d"]

    for density in args.densities:
        S = m.random_csr((K, D), density=density, seed=1, per_row=True)
        G = np.empty(S.nnz, np.float32)
        fns = {
            "fwd": lambda: m.csr_matmul_transposed(X, S, b, out=Y),
            "dx": lambda: m.dense_matmul_csr(DY, S, out=DX),
            "dw": lambda: m.sampled_matmul(DY, X, S, out=G),
        }
        if torch is not None:
            tS = torch.sparse_csr_tensor(
                torch.from_numpy(S.indptr.astype(np.int64)),
                torch.from_numpy(S.indices.astype(np.int64)),
                torch.from_numpy(S.data.copy()),
                size=(K, D),
            )
            tST = tS.to_dense().T.contiguous().to_sparse_csr()  # (D, K) = S.T, built once

            def torch_sparse_step():
                torch.sparse.mm(tS, tX.T.contiguous())  # Y.T = S @ X.T, (K, N)
                torch.sparse.mm(tST, tDY.T.contiguous())  # DX.T = S.T @ DY.T, (D, N)
                torch.sparse.sampled_addmm(tS, tDY.T.contiguous(), tX, beta=0.0)  # DW on S
                tDY.sum(0)

            fns["torch_sparse"] = torch_sparse_step
        t = _median_ms(fns, args.repeat)
        rows.append((density, S.nnz, t))

    hdr = f"{'density':>8} {'nnz':>8} {'fwd':>8} {'DX':>8} {'DW':>8} {'C++ sum':>9}"
    if torch is not None:
        hdr += f" {'torch.sparse':>13} {'dense torch':>12} {'dense/C++':>10}"
    print(hdr)
    for density, nnz, t in rows:
        total = t["fwd"] + t["dx"] + t["dw"]
        line = f"{density:>8.2%} {nnz:>8d} {t['fwd']:>7.3f}m {t['dx']:>7.3f}m {t['dw']:>7.3f}m {total:>8.3f}m"
        if torch is not None:
            line += f" {t['torch_sparse']:>12.3f}m {dense_ms:>11.3f}m {dense_ms / total:>9.1f}x"
        print(line)
    print("times in ms (medians); dense torch = addmm + DY@W + DY.T@X + DY.sum(0) with a dense W")
    print(f"dense layer with batchform::gemm ({m.blas_backend()}): {cpp_dense_ms:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
