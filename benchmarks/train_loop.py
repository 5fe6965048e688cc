"""Training-loop throughput of ``mcmia_lib.train`` as ratios measured in one run (not a test).

For LeNet-5/MNIST and the small CIFAR CNN/CIFAR-10, three variants train the same model with the same
batch size on the same images, in interleaved rounds of a few seconds each:

* ``library``: ``mcmia_lib.train.train`` over resident uint8 tensors (batched tensor flip + crop on CIFAR,
  channels-last memory order);
* ``bare``: a minimal PyTorch loop over the same resident tensors, same preprocessing, default (NCHW) order;
* ``dataloader``: the usual pipeline, a torchvision-style dataset with per-sample PIL transforms
  (ToTensor, Normalize; RandomCrop(padding=4) + RandomHorizontalFlip on CIFAR) and a DataLoader
  (``num_workers=0``: on 2 cores a worker process competes with the training math).

Printed: the median over rounds of the per-round ratios library/bare and library/dataloader.
Usage: ``python benchmarks/train_loop.py [--rounds 5] [--batches 40]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from mcmia_lib import data, models
from mcmia_lib.threads import matmul_gflops
from mcmia_lib.train import TrainConfig, train

CASES = {"LeNet-5 / MNIST": ("mnist", "lenet5", 64, False), "CIFAR CNN / CIFAR-10": ("cifar10", "cifar_cnn", 128, True)}


class PerSampleDataset(torch.utils.data.Dataset):
    """What torchvision's MNIST/CIFAR10 datasets do per item: uint8 array -> PIL image -> transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x = x.permute(0, 2, 3, 1).squeeze(-1).numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()
        self.y, self.transform = y.numpy(), transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def step(model, opt, x, y):
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def run_library(ds, name, n, bs, aug):
    model = models.build_model(name, ds.num_classes, ds.shape)
    cfg = TrainConfig(epochs=1, batch_size=bs, lr=0.01, flip=aug, crop_pad=4 if aug else 0)
    t = time.perf_counter()
    train(model, ds, np.arange(n), cfg, seed=0, eval_test=False)
    return n / (time.perf_counter() - t)


def run_bare(ds, name, n, bs, aug):
    model = models.build_model(name, ds.num_classes, ds.shape).to(memory_format=torch.contiguous_format)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x_all, y_all = ds.x_train[:n], ds.y_train[:n]
    t = time.perf_counter()
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, bs):
        b = perm[i:i + bs]
        x = data.normalize(x_all[b], ds.mean, ds.std).contiguous()
        if aug:
            x = data.augment(x, True, 4, gen)
        step(model, opt, x, y_all[b])
    return n / (time.perf_counter() - t)


def run_dataloader(ds, name, n, bs, aug):
    model = models.build_model(name, ds.num_classes, ds.shape)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tf = [transforms.RandomCrop(ds.shape[1], padding=4), transforms.RandomHorizontalFlip()] if aug else []
    tf = transforms.Compose(tf + [transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)])
    loader = torch.utils.data.DataLoader(PerSampleDataset(ds.x_train[:n], ds.y_train[:n], tf), batch_size=bs,
                                         shuffle=True, num_workers=0)
    t = time.perf_counter()
    for x, y in loader:
        step(model, opt, x, y)
    return n / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=40, help="batches per variant per round")
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds; "
          f"this core's fp32 matmul: {matmul_gflops():.0f} GFLOP/s")
    for case, (dname, mname, bs, aug) in CASES.items():
        ds = data.load_dataset(dname)
        n = bs * args.batches
        variants = {"library": run_library, "bare": run_bare, "dataloader": run_dataloader}
        for fn in variants.values():  # warm-up
            fn(ds, mname, bs * 4, bs, aug)
        rates = {k: [] for k in variants}
        for _ in range(args.rounds):
            for k, fn in variants.items():
                rates[k].append(fn(ds, mname, n, bs, aug))
        vs_bare = statistics.median(a / b for a, b in zip(rates["library"], rates["bare"]))
        vs_dl = statistics.median(a / b for a, b in zip(rates["library"], rates["dataloader"]))
        print(f"{case} (batch {bs}{', flip+crop' if aug else ''}): library/bare = {vs_bare:.2f}x, "
              f"library/DataLoader = {vs_dl:.2f}x  (median library rate {statistics.median(rates['library']):.0f} img/s)")


if __name__ == "__main__":
    main()
