"""DP-SGD overhead: time of a DP-SGD epoch / time of a non-private epoch, same model, same batch size,
same images, both through ``mcmia_lib.train.train`` (the DP run with its Opacus hook: Poisson batches of
the same expected size, ghost clipping, noise), in interleaved rounds. 004 (Lomurno & Matteucci, Table 2)
reports 41–50× with TensorFlow Privacy's micro-batches; issue 5's goal here is ≤ 3×.

Printed: per case, the median over rounds of the per-round ratio DP / non-private. With ``--save``, the
per-round ratios and the conditions of the run go to a JSON file (``data/benchmarks/dp_overhead.json`` is the one
the DP-SGD chapter shows) and their figure to a PNG of the same name (the README's); ``--plot-only`` redraws
that PNG from the saved JSON without timing anything.
Usage: ``python benchmarks/dp_overhead.py [--rounds 5] [--n 2000] [--batch 200] [--save PATH [--plot-only]]``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from mcmia_lib import data, models, plots
from mcmia_lib.report import references
from mcmia_lib.defenses.dp import DPSGD, DPHook
from mcmia_lib.paths import atomic_write_bytes
from mcmia_lib.threads import cpu_model, matmul_gflops
from mcmia_lib.train import TrainConfig, train

CASES = {"LeNet-5 / MNIST": ("mnist", "lenet5"), "004 CNN / MNIST": ("mnist", "lomurno_cnn"),
         "004 CNN / CIFAR-10": ("cifar10", "lomurno_cnn"), "CIFAR CNN / CIFAR-10": ("cifar10", "cifar_cnn")}


def epoch_seconds(ds, name, n, batch, private):
    torch.manual_seed(0)
    model = models.build_model(name, ds.num_classes, ds.shape)
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=0.1, optimizer="sgd", momentum=0.0)
    hooks = [DPHook(DPSGD(noise_multiplier=1.0, max_grad_norm=1.0))] if private else []
    t = time.perf_counter()
    train(model, ds, np.arange(n), cfg, seed=0, hooks=hooks, eval_test=False)
    return time.perf_counter() - t


def save_figure(run: dict, json_path: str) -> None:
    """The per-round ratios beside 004's range and the goal, as ``json_path`` with the suffix .png."""
    plots.setup()
    fig = plots.overhead_ratios(run, goal=references.DP_OVERHEAD_GOAL, paper=references.lomurno_dp_slowdown(),
                                title=f"DP-SGD / non-private epoch time (Opacus {run['opacus']}, {run['started']})")
    fig.savefig(Path(json_path).with_suffix(".png"), dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=2000, help="training examples per epoch")
    ap.add_argument("--batch", type=int, default=200, help="(expected) batch size; 004 uses 200")
    ap.add_argument("--save", metavar="PATH", help="also write the per-round ratios to this JSON file, and "
                    "their figure to the same name with .png")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON given by --save")
    args = ap.parse_args()
    if args.plot_only:
        if not args.save or not Path(args.save).exists():
            ap.error("--plot-only needs --save PATH naming an existing JSON file written by this benchmark")
        save_figure(json.loads(Path(args.save).read_text()), args.save)
        return
    os.environ.setdefault("MCMIA_QUIET", "1")  # no progress bar per timed epoch
    warnings.filterwarnings("ignore", module="opacus")
    warnings.filterwarnings("ignore", message="Full backward hook")
    rate = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.n} examples, batch {args.batch}; "
          f"this core's fp32 matmul: {rate:.0f} GFLOP/s")
    run = {"torch": torch.__version__, "matmul_gflops_per_core": rate, "cpu": cpu_model(), "opacus": version("opacus"), "threads": torch.get_num_threads(),
           "examples": args.n, "batch": args.batch, "rounds": args.rounds, "cpus": os.cpu_count(),
           "load_average_before": os.getloadavg()[0], "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "cases": {}}
    for label, (dataset, name) in CASES.items():
        ds = data.load_dataset(dataset)
        epoch_seconds(ds, name, args.batch * 2, args.batch, True)  # warm-up
        ratios = []
        for _ in range(args.rounds):
            plain = epoch_seconds(ds, name, args.n, args.batch, False)
            ratios.append(epoch_seconds(ds, name, args.n, args.batch, True) / plain)
        print(f"{label:22s} DP-SGD / non-private: {statistics.median(ratios):.2f}x "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
        run["cases"][label] = ratios
    if args.save:
        atomic_write_bytes(args.save, (json.dumps(run, indent=1) + "\n").encode())
        save_figure(run, args.save)


if __name__ == "__main__":
    main()
