"""Time to accuracy (issue 18): core-minutes for a CIFAR-10 (JPEG copy) target on a random draw of
``--members`` training images to reach its final test accuracy, with the fast recipe (``fastnet``, SGD
Nesterov, one-cycle, label smoothing, weight decay on weights only, flip + crop, channels-last, evaluation
averaged over the image and its flip; ``--bf16``:
bfloat16 autocast) or the MCMIA chapter's recipe (VGG16 × 0.25, Adam 1e-3, constant rate). One torch thread;
the machine's fp32 and bf16 matmul rates per core are measured first and printed beside the figures, since
machines of this kind differ 2.5× (fp32), and more in bf16 (AMX or none). Goals on a ~60 GFLOP/s core:
≥ 78 % test accuracy on 10,000 members within 10 core-minutes, ≥ 85 % on 25,000 within 25, train accuracy ≥ 95 %.

Usage: ``python benchmarks/time_to_accuracy.py --recipe fast --members 10000 [--epochs 15] [--lr 0.2] [--width 1]
[--bf16] [--save PATH]``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
import os
import platform
import time

import torch

from mcmia_lib import data, models
from mcmia_lib.threads import cpu_model, matmul_gflops
from mcmia_lib.train import TrainConfig, predict, train

RECIPES = {
    "fast": ("fastnet", 1.0, lambda epochs, lr: TrainConfig(
        epochs=epochs, batch_size=250, lr=lr or 0.2, optimizer="sgd", momentum=0.9, nesterov=True, schedule="onecycle",
        warmup=0.2, label_smoothing=0.2, weight_decay=5e-4, decay_weights_only=True, flip=True, crop_pad=2,
        channels_last=True, eval_flip=True, curve_subset=2000)),
    "vgg": ("vgg16", 0.25, lambda epochs, lr: TrainConfig(
        epochs=epochs, batch_size=64, lr=lr or 1e-3, optimizer="adam", curve_subset=2000)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="fast")
    ap.add_argument("--members", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    ap.add_argument("--width", type=float, help="channel width multiplier (default: the recipe's)")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass and the loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", metavar="PATH", help="write the run's figures and conditions to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    rate, rate_bf16 = matmul_gflops(), matmul_gflops(dtype="bfloat16")
    ds = data.load_dataset("cifar10")
    split = data.membership_split(len(ds.y_train), len(ds.y_test), args.seed, args.members)
    name, width, make_cfg = RECIPES[args.recipe]
    cfg = replace(make_cfg(args.epochs, args.lr), bf16=args.bf16 or None)
    width = args.width or width
    torch.manual_seed(args.seed)
    model = models.build_model(name, ds.num_classes, ds.shape, width)
    started, t0 = time.strftime("%Y-%m-%d %H:%M"), time.process_time()
    history = train(model, ds, split.target_train, cfg, args.seed, desc=f"{args.recipe} {args.members}")
    cpu_minutes = (time.process_time() - t0) / 60
    idx = torch.as_tensor(split.target_train)
    flip = bool(cfg.eval_flip)  # the fast recipe averages the logits of the image and its flip
    train_acc = float((predict(model, ds.x_train[idx], ds, flip_average=flip).argmax(1) == ds.y_train[idx]).float().mean())
    test_acc = float((predict(model, ds.x_test, ds, flip_average=flip).argmax(1) == ds.y_test).float().mean())
    run = {"recipe": args.recipe, "model": name, "width": width, "members": args.members, "epochs": args.epochs,
           "parameters": models.count_parameters(model), "test_acc": test_acc, "train_acc": train_acc,
           "core_minutes": cpu_minutes, "step_minutes": sum(h["step_seconds"] for h in history) / 60,
           "matmul_gflops_per_core": rate, "bf16_matmul_gflops_per_core": rate_bf16, "cpu": cpu_model(), "machine": platform.machine(),
           "load_average_before": load, "torch": torch.__version__,
           "started": started, "config": cfg.__dict__,
           "curve": [{"epoch": h["epoch"], "test_acc_subset": h["test_acc"], "train_acc_running": h["train_acc"]}
                     for h in history]}
    print(f"{args.recipe} recipe{' (bf16)' if args.bf16 else ''}, {name} x{width:g} ({run['parameters']:,} parameters), "
          f"{args.members:,} members, {args.epochs} epochs: test {100 * test_acc:.1f} %, train {100 * train_acc:.1f} %, "
          f"{cpu_minutes:.1f} core-minutes (one thread; this core's matmul: fp32 {rate:.0f}, bf16 {rate_bf16:.0f} "
          "GFLOP/s)")
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(run, fh, indent=1)


if __name__ == "__main__":
    main()
