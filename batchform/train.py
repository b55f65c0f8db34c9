"""``batchform train``: train an MLP on digits or an npz file with any backend, from Nerva-style options."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchform.training.backends import BACKENDS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``batchform train``; Nerva's spellings (``--layer-weights``, ``--load-dataset``,
    ``;``-separated ``--layer-sizes``, a plain ``--learning-rate``) are accepted as they are."""
    from batchform.training.options import known_names, layers_help
    from batchform.training.schedules import INITIALIZER_NAMES

    p.add_argument("--backend", default="numpy", help=f"one of {', '.join(BACKENDS)}")
    p.add_argument("--dataset", "--load-dataset", dest="dataset", default="digits",
                   help="'digits' (scikit-learn's 8×8 digits, built in), 'fashion-mnist' (the idx files of "
                        "Debian's package dataset-fashion-mnist, or of --data-dir; converted once into the user "
                        "cache) or a Nerva .npz file (Xtrain, Ttrain, Xtest, Ttest); --load-dataset is Nerva's name")
    p.add_argument("--data-dir", metavar="FOLDER", default=None,
                   help="with --dataset fashion-mnist: the folder holding its four idx files, plain or .gz "
                        "(default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--layers", default="ReLU;ReLU;Linear", help=layers_help())
    p.add_argument("--layer-sizes", "--sizes", dest="layer_sizes", default=None,
                   help="sizes separated by ',' or ';', input first, e.g. 784;1024;512;10 "
                        "(default: input,64,…,64,classes from the data)")
    p.add_argument("--optimizers", default="Momentum(0.9)",
                   help=f"one for all layers or one per layer, separated by ';': {', '.join(known_names('update'))}")
    p.add_argument("--init-weights", "--layer-weights", dest="init_weights", default="XavierNormal",
                   help=f"weight initializer, one for all weighted layers or one per layer separated by ';' "
                        f"(--layer-weights is Nerva's name): {INITIALIZER_NAMES}")
    p.add_argument("--loss", default="StableSoftmaxCrossEntropy",
                   help=f"one of {', '.join(known_names('loss', ('_loss',)))}")
    p.add_argument("--learning-rate", default="Constant(0.05)",
                   help="a number η (constant) or a scheduler: Constant(η), TimeBased(η,d), StepBased(η,d,r), "
                        "MultiStep(η;m1,m2,…;Γ), Exponential(η,d)")
    p.add_argument("--epochs", type=int, default=20, help="number of epochs")
    p.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the digits split and the shuffling")
    p.add_argument("--no-shuffle", action="store_true",
                   help="take the minibatches in the data's order every epoch (default: shuffled each epoch)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="floating-point type")
    p.add_argument("--save-weights", metavar="PATH", help="write the trained weights to an npz file (default: none)")
    p.add_argument("--load-weights", metavar="PATH", help="start from the weights in an npz file (default: none)")
    p.add_argument("--export-torch", metavar="PATH",
                   help="save a torch state_dict of nn.Linear layers (default: none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: a bar on a terminal)")
    sparse = p.add_argument_group("sparse training (numpy and cpp backends)")
    sparse.add_argument("--overall-density", metavar="D",
                        help="overall density in (0, 1], split over the layers by Erdős–Rényi (default: dense)")
    sparse.add_argument("--densities", metavar="D1;D2;...",
                        help="one density per weighted layer; 1 means dense, below 1 sparse (CSR) (default: dense)")
    sparse.add_argument("--prune", metavar="STRATEGY",
                        help="Magnitude(ζ), SET(ζ) or Threshold(t) (default: no pruning)")
    sparse.add_argument("--grow", metavar="STRATEGY",
                        help="Random or Gradient (RigL); as many as pruned (default: none)")
    sparse.add_argument("--grow-weights", metavar="INIT", help="initializer of regrown weights "
                        "(default: --init-weights)")
    sparse.add_argument("--prune-interval", type=int, default=None, metavar="E",
                        help="with --prune: prune and grow at the start of every E-th epoch after the first "
                             "(default: 1)")
    sparse.add_argument("--sparse-fans", choices=["stored", "dense"], default="stored",
                        help="scale a sparse layer's initial weights by the stored entries of each row and column "
                             "(its units' real fan-in and fan-out, Evci et al. 2022) or by the dense layer's "
                             "(default: stored)")
    sparse.add_argument("--clip", metavar="T", help="after each update, set weights with |w| < T to 0 (default: none)")
    from batchform.training import parallel

    parallel.add_arguments(p)


class _Progress:
    """A rich progress bar over the batches of one epoch."""

    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress("epoch {task.fields[epoch]}", BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)
        self.task = None

    def start(self, epoch, total):
        self.progress.start()
        self.task = self.progress.add_task("train", total=total, epoch=epoch + 1)

    def advance(self):
        self.progress.advance(self.task)

    def stop(self):
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
        self.progress.stop()


@dataclass(frozen=True)
class Options:
    """Every option of ``batchform train`` parsed and checked; nothing here needs the data or a backend."""

    dtype: type
    layers: list
    loss: str
    scheduler: object
    optimizers: list
    sizes: list | None
    init: list


def parse_options(args) -> Options:
    """Check every option before anything is loaded or trained; raises OptionError naming the option."""
    from batchform.atomic import check_writable
    from batchform.training.options import (OptionError, parse_layers, parse_loss, parse_optimizers,
                                            parse_sizes)
    from batchform.training.schedules import parse_layer_initializers, parse_learning_rate
    from batchform.training.sparse import check_dynamic

    if args.epochs < 1:
        raise OptionError("--epochs must be at least 1")
    if args.batch_size < 1:
        raise OptionError("--batch-size must be at least 1")
    if not 0 <= args.seed < 2**32:
        raise OptionError(f"--seed must be a whole number from 0 to 2**32 - 1, got {args.seed}")
    if args.backend not in BACKENDS:
        raise OptionError(f"--backend: unknown backend {args.backend!r}; choose from {', '.join(BACKENDS)}")
    check_dynamic(args.prune, args.grow, args.grow_weights, args.prune_interval)
    layers = parse_layers(args.layers)
    weighted = sum(1 for layer in layers if not layer.is_batch_norm)
    options = Options(np.float32 if args.dtype == "float32" else np.float64, layers, parse_loss(args.loss),
                      parse_learning_rate(args.learning_rate), parse_optimizers(args.optimizers, len(layers)),
                      parse_sizes(args.layer_sizes) if args.layer_sizes is not None else None,
                      parse_layer_initializers(args.init_weights, weighted))
    for option, path in (("--save-weights", args.save_weights), ("--export-torch", args.export_torch),
                         ("--load-weights", args.load_weights), ("--dataset", args.dataset)):
        if path is not None and not path.strip():
            raise OptionError(f"{option}: an empty file name")
    if args.data_dir is not None and args.dataset != "fashion-mnist":
        raise OptionError(f"--data-dir: only for --dataset fashion-mnist, not {args.dataset!r}")
    for option, path in (("--save-weights", args.save_weights), ("--export-torch", args.export_torch)):
        problem = path and check_writable(path, option)
        if problem:
            raise OptionError(problem)
    if args.export_torch:  # refused before training, not after
        from batchform.training.network import Network
        from batchform.generated.manifest import SPECS

        for layer in layers:
            problem = Network.torch_export_problem(SPECS[layer.spec])
            if problem:
                raise OptionError(f"--export-torch: {problem}")
    return options


def _save_outputs(args, network, console) -> int:
    """Write --save-weights and --export-torch; if one fails, the weights go to a fallback file instead."""
    from batchform.atomic import write_atomic

    failed = 0
    for option, path, write in (("--save-weights", args.save_weights, network.save_weights),
                                ("--export-torch", args.export_torch, network.export_torch)):
        if not path:
            continue
        try:
            write(path)
            console.print(f"saved {'weights' if option == '--save-weights' else 'a torch state_dict'} to {path}")
        except Exception as exc:  # the trained weights must survive any failure to write them
            failed = 1
            fallback = Path(tempfile.gettempdir()) / f"batchform-weights-{os.getpid()}-{int(time.time())}.npz"
            try:
                write_atomic(fallback, lambda handle: np.savez(handle, **network.weights()))
                where = f"the weights were saved to {fallback} instead"
            except Exception as again:
                where = f"the weights could not be saved anywhere ({again})"
            print(f"error: {option}: cannot write {path} ({exc}); {where}", file=sys.stderr)
    return failed


def initial_statistics(trainer, data):
    """Nerva's epoch-0 line: loss and accuracies of the initial weights, with epoch 0's η."""
    from batchform.training.loop import EpochResult

    loss, train_accuracy = trainer.evaluate(data.Xtrain, data.Ttrain)
    _, test_accuracy = trainer.evaluate(data.Xtest, data.Ttest)
    return EpochResult(0, loss, train_accuracy, test_accuracy, 0.0, trainer.scheduler(0))


def main(args) -> int:
    from rich.console import Console

    from batchform.data import DataError, load_dataset
    from batchform.training.backends import make_backend
    from batchform.training.network import Network
    from batchform.training.options import OptionError
    from batchform.training.sparse import layer_densities, parse_clip, parse_dynamic

    from batchform.training import parallel

    rank = int(os.environ.get("RANK", "0"))
    console = Console(quiet=rank != 0)  # only rank 0 prints (and saves)
    replicas = None
    try:
        options = parse_options(args)
        parallel.check_options(args, options.layers)
        if args.devices > 1 and not parallel.use_host_devices(args.devices):
            return parallel.rerun_with_host_devices(getattr(args, "argv", ["train", *sys.argv[1:]]), args.devices)
        if args.nproc > 1 and parallel.world_size() == 1:
            return parallel.launch(args, args.nproc, main)
        layers = options.layers
        data = load_dataset(args.dataset, seed=args.seed, dtype=options.dtype, data_dir=args.data_dir)
        weighted = sum(1 for layer in layers if not layer.is_batch_norm)
        if options.sizes:
            sizes = options.sizes
        else:
            sizes = [data.num_features] + [64] * (weighted - 1) + [data.num_classes]
        if sizes[0] != data.num_features:
            raise OptionError(f"--layer-sizes: the input size {sizes[0]} does not match the data's "
                              f"{data.num_features} features")
        if sizes[-1] != data.num_classes:
            raise OptionError(f"--layer-sizes: the output size {sizes[-1]} does not match the data's "
                              f"{data.num_classes} classes")
        densities = layer_densities(args.overall_density, args.densities, sizes)
        dynamic = parse_dynamic(args.prune, args.grow, args.grow_weights, args.prune_interval, options.init[0],
                                densities)
        clip = parse_clip(args.clip)
        backend = make_backend(args.backend, options.dtype)
        if args.backend == "cpp":
            backend.kernels.set_flush_denormals(True)  # subnormals slow sparse CPU training several-fold
        parallel.choose_device(backend)
        network = Network.build(backend, layers, sizes, options.optimizers, options.init, seed=args.seed,
                                densities=densities, sparse_fans=args.sparse_fans)
        network.clip = clip
        if args.load_weights:
            for line in network.load_weights(args.load_weights):
                console.print(f"note: --load-weights {line}")
        replicas = parallel.replicas_for(args, backend)  # last: every check before the processes meet
    except (OptionError, DataError) as exc:
        if rank == 0:  # every process finds the same fault
            print(f"error: {exc}", file=sys.stderr)
        if replicas is not None:
            replicas.close()
        return 2
    except ImportError as exc:
        if rank == 0:
            print(f"error: backend {args.backend!r} is not available: {exc}", file=sys.stderr)
        return 2
    except parallel.ReplicaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = True
    try:
        code = _train(args, options, data, sizes, densities, dynamic, network, replicas, console)
        failed = False
        replicas.close()
        return code
    except parallel.ReplicaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if failed:
            replicas.close(failed=True)


def _train(args, options, data, sizes, densities, dynamic, network, replicas, console) -> int:
    from batchform.training.loop import Trainer
    from batchform.training.sparse import describe

    console.print(f"batchform train: backend {args.backend}, {args.dtype}, layers {args.layers}, sizes "
                  f"{','.join(map(str, sizes))}, loss {args.loss}, optimizer {args.optimizers}, "
                  f"learning rate {args.learning_rate}, batch {args.batch_size}, seed {args.seed}"
                  + (f", {replicas.description}" if replicas.size > 1 else ""))
    if densities is not None:
        console.print(f"sparsity: {describe(network)}" + (f"; prune {args.prune}, grow {args.grow} every "
                                                           f"{dynamic.interval} epoch(s)" if dynamic else ""))
    trainer = Trainer(network, options.loss, options.scheduler, args.batch_size, seed=args.seed, dynamic=dynamic,
                      log=console.print, replicas=replicas, shuffle=not getattr(args, "no_shuffle", False))
    console.print(f"{'epoch':>5}  {'loss':>10}  {'train acc':>9}  {'test acc':>8}  {'time (s)':>8}  {'η':>8}")

    def report(r):
        console.print(f"{r.epoch:>5}  {r.loss:>10.6f}  {r.train_accuracy:>9.4f}  {r.test_accuracy:>8.4f}  "
                      f"{r.seconds:>8.3f}  {r.learning_rate:>8.4g}")

    report(initial_statistics(trainer, data))

    start = time.perf_counter()
    progress = None if args.no_progress or not console.is_terminal else _Progress(console)
    history = trainer.train(data, args.epochs, report=report, progress=progress)
    console.print(f"total {time.perf_counter() - start:.2f} s")
    failed = _save_outputs(args, network, console) if replicas.rank == 0 else 0
    if history.stopped:
        if replicas.rank == 0:
            print(f"error: {history.stopped}", file=sys.stderr)
        return 1
    return failed

