"""The leave-one-out model grid of the strong attacks (issue 19; DESIGN.md "Strong attacks").

A pool P: a seeded draw of ``n_pool`` training images of which ``n_canary`` carry a fixed wrong label
(mislabeled canaries, Aerni et al. 2024). ``n_models`` models per configuration; each pool example is a member
of exactly half of them (``membership_masks``), so any model can serve as the target and the others as its
reference models. An entry (``PoolModelSpec``, one model) stores the model's logits on all of P for each
query (the image, and its horizontal flip with ``flip_query``) in float16 with its membership mask, and its
test accuracy — not its weights (a checkpoint per epoch makes the training resumable; it is deleted after).

The pool, the canaries and the masks depend on ``Pool`` alone, not on the model's training or defense, so a
defense configuration on the same ``Pool`` is attacked on the same examples and canaries.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from . import engine
from .data import Dataset, load_dataset
from .defenses.dp import DPSGD
from .defenses.regularization import Regularization
from .models import build_model
from .runner import defense_hooks, weights_path
from .store import TRAINING_COMPONENTS
from .train import TrainConfig, predict, train


@dataclass(frozen=True)
class Pool:
    """The examples the grid's models train on and are attacked on."""

    dataset: str
    n_pool: int
    n_canary: int
    n_models: int
    seed: int = 0

    def __post_init__(self):
        if self.n_models < 2 or self.n_models % 2:
            raise ValueError(f"n_models must be even and >= 2 (each example in exactly half), got {self.n_models}")
        if not 0 <= self.n_canary <= self.n_pool:
            raise ValueError(f"n_canary must be in [0, n_pool={self.n_pool}], got {self.n_canary}")


def membership_masks(n_pool: int, n_models: int, seed: int) -> np.ndarray:
    """(n_models, n_pool) bool: each example is a member of exactly ``n_models / 2`` models, chosen at random."""
    rng = np.random.default_rng([seed, 7])
    order = rng.random((n_models, n_pool)).argsort(0)  # an independent random order of the models per example
    return order < n_models // 2


@functools.lru_cache(maxsize=4)
def pool_data(pool: Pool) -> tuple[Dataset, np.ndarray, torch.Tensor, np.ndarray]:
    """(dataset, pool indices into its training set, the pool's labels with the canaries' wrong labels,
    canary mask)."""
    ds = load_dataset(pool.dataset)
    if pool.n_pool > len(ds.y_train):
        raise ValueError(f"n_pool={pool.n_pool} exceeds the {len(ds.y_train)} training images of {pool.dataset}")
    rng = np.random.default_rng([pool.seed, 5])
    idx = np.sort(rng.choice(len(ds.y_train), pool.n_pool, replace=False))
    labels = ds.y_train[torch.as_tensor(idx)].clone()
    canary = np.zeros(pool.n_pool, dtype=bool)
    canary[rng.choice(pool.n_pool, pool.n_canary, replace=False)] = True
    shift = torch.as_tensor(rng.integers(1, ds.num_classes, pool.n_canary))
    labels[torch.as_tensor(canary)] = (labels[torch.as_tensor(canary)] + shift) % ds.num_classes
    return ds, idx, labels, canary


@dataclass(frozen=True)
class PoolModelSpec:
    """Model ``index`` of the grid over ``pool``: its architecture, training and defenses (DP-SGD, L2 on the
    prediction layer and/or dropout); ``flip_query`` adds the flipped image as a second query."""

    pool: Pool
    model: str
    train: TrainConfig
    index: int
    width: float = 1.0
    dp: DPSGD | None = None
    regularization: Regularization | None = None
    flip_query: bool = False

    def __post_init__(self):
        if not 0 <= self.index < self.pool.n_models:
            raise ValueError(f"index must be in [0, {self.pool.n_models}), got {self.index}")


def _compute(spec: PoolModelSpec, device: torch.device, past_corrupt: bool = False) -> tuple[dict, dict]:
    ds, idx, labels, canary = pool_data(spec.pool)
    member = membership_masks(spec.pool.n_pool, spec.pool.n_models, spec.pool.seed)[spec.index]
    pool_ds = Dataset(ds.name, ds.label, ds.x_train[torch.as_tensor(idx)], labels, ds.x_test, ds.y_test,
                      ds.num_classes, ds.mean, ds.std)  # the pool as the training set, canary labels included
    seed = 1000 * spec.pool.seed + spec.index
    torch.manual_seed(seed)
    reg = spec.regularization
    model = build_model(spec.model, ds.num_classes, ds.shape, spec.width, reg.dropout if reg else None).to(device)
    hooks = defense_hooks(reg, spec.dp)
    ckpt = weights_path(engine.key(spec)).with_suffix(".ckpt")
    history = train(model, pool_ds, np.flatnonzero(member), spec.train, seed, hooks=hooks, checkpoint=ckpt,
                    desc=f"{spec.model}/{spec.pool.dataset} model {spec.index}")
    queries = [predict(model, pool_ds.x_train, pool_ds).cpu()]
    if spec.flip_query:
        queries.append(predict(model, pool_ds.x_train.flip(-1), pool_ds).cpu())
    logits = torch.stack(queries, 1)  # (n_pool, q, classes)
    correct = predict(model, ds.x_test, ds).argmax(1).cpu() == ds.y_test
    result = {"test_acc": float(correct.float().mean()),
              "train_acc": float((logits[member, 0].argmax(1) == labels[member]).float().mean()),
              "canary_train_acc": float((logits[member & canary, 0].argmax(1) == labels[member & canary]).float()
                                        .mean()) if (member & canary).any() else None,
              "n_members": int(member.sum()), "history": history}
    if spec.dp is not None:
        last = history[-1]
        result["dp"] = {"epsilon": last["dp_epsilon"], "delta": spec.dp.delta, "noise_multiplier":
                        last["dp_noise_multiplier"], "sample_rate": last["dp_sample_rate"], "steps": last["dp_steps"]}
    ckpt.unlink(missing_ok=True)
    return result, {"logits": logits.numpy().astype(np.float16), "member": member, "canary": canary,
                    "label": labels.numpy().astype(np.int16)}


engine.register(PoolModelSpec, "loo-", TRAINING_COMPONENTS, _compute, lambda spec: [])


def grid_specs(pool: Pool, model: str, cfg: TrainConfig, **defense) -> list[PoolModelSpec]:
    """The ``pool.n_models`` models of one configuration."""
    return [PoolModelSpec(pool, model, cfg, i, **defense) for i in range(pool.n_models)]
