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
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import engine
from .attacks.lira import logit_confidence
from .data import Dataset, load_dataset
from .defenses.dp import DPSGD
from .defenses.imp import IMP, nonzero_fraction
from .defenses.minmax import MinMax, MinMaxHook
from .defenses.pruning import ADMMPruning
from .defenses.regularization import Regularization
from .models import build_model, count_parameters
from .models.butterfly import butterfly_segments
from .defenses import defense_hooks
from .weights import cached_phase, weights_path
from .store import TRAINING_COMPONENTS
from .train import Phase, TrainConfig, predict, train


@dataclass(frozen=True)
class Pool:
    """The examples the grid's models train on and are attacked on."""

    dataset: str
    n_pool: int
    n_canary: int
    n_models: int
    seed: int = 0
    block: int | None = None

    def __post_init__(self):
        if self.n_models < 2 or self.n_models % 2:
            raise ValueError(f"n_models must be even and >= 2 (each example in exactly half), got {self.n_models}")
        if not 0 <= self.n_canary <= self.n_pool:
            raise ValueError(f"n_canary must be in [0, n_pool={self.n_pool}], got {self.n_canary}")
        if self.block is not None and (self.block < 2 or self.block % 2 or self.n_models % self.block):
            raise ValueError(f"block must be even, >= 2 and divide n_models={self.n_models}, got {self.block}")

    def masks(self) -> np.ndarray:
        """The membership masks (n_models, n_pool) of the pool's models (``membership_masks``)."""
        return membership_masks(self.n_pool, self.n_models, self.seed, self.block)


def membership_masks(n_pool: int, n_models: int, seed: int, block: int | None = None) -> np.ndarray:
    """(n_models, n_pool) bool: each example is a member of exactly ``n_models / 2`` models, chosen at random.
    With ``block``, the models form consecutive blocks of that many, each with this property on its own: a
    configuration that trains only the first block (defended models, fewer than the undefended ones) has
    exact-half masks too, and the undefended models of every block can serve as its references."""
    if block is not None and block != n_models:
        return np.concatenate([membership_masks(n_pool, block, seed * 1000 + 100 + b) for b in range(n_models // block)])
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


def outside_pool(pool: Pool) -> tuple[np.ndarray, np.ndarray]:
    """The training images outside the pool (no model of the grid trains on them), in a seeded order, split in
    two halves: (reference, validation). The reference half is Min-Max's non-member set (Nasr et al. 2018, the
    defender's reference data); the validation half is where training curves, IMP's rewinding epoch and every
    tuning choice (DP-SGD's and Min-Max's settings) are read, never the test set or the attacked pool."""
    ds, idx, _, _ = pool_data(pool)
    rest = np.setdiff1d(np.arange(len(ds.y_train)), idx)
    if len(rest) < 2:
        raise ValueError(f"the pool takes {len(idx)} of the {len(ds.y_train)} training images of {pool.dataset}: "
                         "none left outside it for Min-Max's reference set and validation; lower n_pool")
    order = np.random.default_rng([pool.seed, 13]).permutation(rest)
    half = len(order) // 2
    return np.sort(order[:half]), np.sort(order[half:])


@dataclass(frozen=True)
class PoolModelSpec:
    """Model ``index`` of the grid over ``pool``: its architecture, training and defenses; ``flip_query`` adds the
    flipped image as a second query; ``holdout`` stores the outputs on that many test images too (RMIA's
    population from outside the pool).

    Defenses: ``dp`` (DP-SGD), ``regularization`` (L2 on the prediction layer and/or dropout, 004),
    ``minmax`` (Nasr et al.'s adversarial regularization against the pool's out-of-pool reference half),
    ``pruning`` (ADMM, 000/001: ``train`` is the pretraining, then the ADMM and masked-retraining phases; with
    ``minmax``, Min-Max joins the retraining: 000's combined defense), ``imp`` (002's IMP with rewinding: every
    round trains with ``train``), ``butterfly`` = (S, L): DeBut convolutions in the last S segments with L
    factors (002). Count every phase's epochs when matching training budgets.

    ``compact`` (the comparison's layout): the entry keeps, per example and query, only the attacks' statistic
    φ = log p_y − log(1 − p_y) (LiRA's logit-scaled confidence; RMIA's p_y = sigmoid φ) in float16 and whether the
    model classifies it right, a tenth of the logits' size; training curves and IMP's rewinding read the
    validation half of ``outside_pool``, and the result adds its accuracy there. Multi-phase defenses need it."""

    pool: Pool
    model: str
    train: TrainConfig
    index: int
    width: float = 1.0
    dp: DPSGD | None = None
    regularization: Regularization | None = None
    flip_query: bool = False
    holdout: int | None = None
    minmax: MinMax | None = None
    pruning: ADMMPruning | None = None
    imp: IMP | None = None
    butterfly: tuple[int, int] | None = None
    compact: bool | None = None

    def __post_init__(self):
        if not 0 <= self.index < self.pool.n_models:
            raise ValueError(f"index must be in [0, {self.pool.n_models}), got {self.index}")
        if self.holdout is not None and self.holdout < 1:
            raise ValueError(f"holdout must be >= 1 test images (or None), got {self.holdout}")
        if self.butterfly is not None:
            object.__setattr__(self, "butterfly", tuple(int(v) for v in self.butterfly))
            if len(self.butterfly) != 2:
                raise ValueError(f"butterfly is (segments, factors), got {self.butterfly}")
        if (self.minmax or self.pruning or self.imp or self.butterfly) and not self.compact:
            raise ValueError("Min-Max, pruning, IMP and butterfly models read validation images outside the pool: "
                             "set compact=True")
        if self.imp and (self.pruning or self.minmax):
            raise ValueError("IMP combines here with neither ADMM pruning nor Min-Max")
        if self.dp is not None and (self.minmax or self.pruning or self.imp
                                    or (self.regularization and self.regularization.l2_last)):
            raise ValueError("DP-SGD combines here only with dropout: its clipping bounds the cross-entropy's "
                             "per-example gradients, not those of pruning, Min-Max or L2 terms")

    @property
    def epochs(self) -> int:
        """Epochs over the members in all phases: the training budget that configurations are matched on."""
        if self.imp:
            return self.train.epochs * (self.imp.prunings + 1)
        extra = self.pruning.admm_epochs + self.pruning.retrain_epochs if self.pruning else 0
        return self.train.epochs + extra


def holdout_indices(n_test: int, n: int, seed: int) -> np.ndarray:
    """A seeded draw of ``n`` test-split images (sorted), the same for every model of a pool's seed: data from
    outside the pool that no model trains on, RMIA's population (Zarifzadeh et al. 2024) and a clean
    non-member sample."""
    if n > n_test:
        raise ValueError(f"holdout={n} exceeds the {n_test} test images")
    return np.sort(np.random.default_rng([seed, 11]).choice(n_test, n, replace=False))


def _phases(spec: PoolModelSpec, data: Dataset, ref: Dataset, members: np.ndarray, seed: int) -> list[Phase]:
    """The model's training phases: one, or ADMM's pretraining → ADMM → pruned retraining, or IMP's rounds (each
    ending at its best-validation epoch: its ``KeepBest`` hook is last)."""
    def minmax(s):
        return [] if spec.minmax is None else [MinMaxHook(ref, members, np.arange(len(ref.y_test)), spec.minmax,
                                                          spec.train.batch_size, s)]
    if spec.imp:
        return spec.imp.phases(spec.train, seed)
    if spec.pruning:
        return [Phase("train", spec.train, seed, lambda m: []),
                *spec.pruning.phases(spec.train, seed, minmax(seed + 2))]
    return [Phase("train", spec.train, seed, lambda m: minmax(seed) + defense_hooks(spec.regularization, spec.dp))]


def phase_keys(spec: PoolModelSpec) -> list[str]:
    """Weights keys of a compact model's training phases, each named by what it depends on, so that a phase two
    configurations share is trained once (the grid runs the second after the first): ADMM's pretraining is the
    plain model with the pretraining's settings (the early-stopping configuration of as many epochs), its ADMM
    phase is shared by ADMM pruning with and without Min-Max, IMP's round k by every IMP with more rounds. The
    older layout keeps no weights (none)."""
    if not spec.compact:
        return []
    if spec.imp:
        return [engine.key(replace(spec, imp=IMP(k, spec.imp.keep))) + "-round" for k in range(spec.imp.prunings + 1)]
    if spec.pruning:
        return [engine.key(replace(spec, pruning=None, minmax=None)), engine.key(replace(spec, minmax=None)) + "-admm",
                engine.key(spec) + "-retrain"]
    return [engine.key(spec)]


def _trained(spec: PoolModelSpec, data: Dataset, ref: Dataset, members: np.ndarray, device, past_corrupt: bool
             ) -> tuple[torch.nn.Module, list]:
    """Train the model (resumable from an epoch checkpoint; a compact model's phases are cached by
    ``phase_keys``, kept for the configurations that share them); return it with the per-epoch history of all
    phases."""
    seed = 1000 * spec.pool.seed + spec.index
    torch.manual_seed(seed)
    reg = spec.regularization
    model = build_model(spec.model, data.num_classes, data.shape, spec.width, reg.dropout if reg else None)
    if spec.butterfly:
        butterfly_segments(model, *spec.butterfly)
    model = model.to(device)
    phases, keys = _phases(spec, data, ref, members, seed), phase_keys(spec)
    desc = f"{spec.model}/{spec.pool.dataset} model {spec.index}"
    if not keys:
        ckpt = weights_path(engine.key(spec)).with_suffix(".ckpt")
        history = train(model, data, members, phases[0].cfg, seed, hooks=phases[0].hooks(model), checkpoint=ckpt,
                        desc=desc)
        ckpt.unlink(missing_ok=True)
        return model, history
    history = []
    for phase, key in zip(phases, keys, strict=True):
        hooks = phase.hooks(model)

        def fit(ckpt):
            h = train(model, data, members, phase.cfg, phase.seed, hooks=hooks, checkpoint=ckpt,
                      desc=f"{desc} {phase.name}")
            if spec.imp:
                hooks[-1].restore(model)  # IMP rewinds to the round's best-validation epoch
            return h
        h, _ = cached_phase(key, model, device, fit, phase.name, past_corrupt)
        history += h
    return model, history


def _compute(spec: PoolModelSpec, device: torch.device, past_corrupt: bool = False) -> tuple[dict, dict]:
    ds, idx, labels, canary = pool_data(spec.pool)
    member = spec.pool.masks()[spec.index]
    pool_ds = Dataset(ds.name, ds.label, ds.x_train[torch.as_tensor(idx)], labels, ds.x_test, ds.y_test,
                      ds.num_classes, ds.mean, ds.std)  # the pool as the training set, canary labels included
    ref = pool_ds
    if spec.compact:  # curves on validation images outside the pool; Min-Max's reference set beside them
        reference, validation = (torch.as_tensor(i) for i in outside_pool(spec.pool))
        ref = Dataset(ds.name, ds.label, pool_ds.x_train, labels, ds.x_train[reference], ds.y_train[reference],
                      ds.num_classes, ds.mean, ds.std)
        pool_ds = Dataset(ds.name, ds.label, pool_ds.x_train, labels, ds.x_train[validation], ds.y_train[validation],
                          ds.num_classes, ds.mean, ds.std)
    model, history = _trained(spec, pool_ds, ref, np.flatnonzero(member), device, past_corrupt)
    model.eval()

    def queries(x):  # (n, q, classes): the image, and its flip with ``flip_query``
        return torch.stack([predict(model, x, pool_ds).cpu()]
                           + ([predict(model, x.flip(-1), pool_ds).cpu()] if spec.flip_query else []), 1)
    t0 = time.perf_counter()
    logits = queries(pool_ds.x_train)
    seconds_query = time.perf_counter() - t0

    def accuracy(x, y):
        return float((predict(model, x, ds, flip_average=spec.train.eval_flip).argmax(1).cpu() == y).float().mean())
    right = (logits[:, 0].argmax(1) == labels).numpy()
    result = {"test_acc": accuracy(ds.x_test, ds.y_test),
              "train_acc": float(right[member].mean()),
              "canary_train_acc": float(right[member & canary].mean()) if (member & canary).any() else None,
              "n_members": int(member.sum()), "history": history}
    if spec.compact:
        result["val_acc"] = accuracy(pool_ds.x_test, pool_ds.y_test)
        result["clean_train_acc"] = float(right[member & ~canary].mean())
        result["epochs"] = spec.epochs
        result["parameters"] = count_parameters(model)
        result["nonzero_fraction"] = nonzero_fraction(model, count_parameters(build_model(
            spec.model, ds.num_classes, ds.shape, spec.width)))
        result["seconds_per_1000_queries"] = 1000 * seconds_query / (len(labels) * logits.shape[1])
        result["seconds_train"] = sum(h["seconds"] for h in history)  # epochs before a resume included
    if spec.dp is not None:
        last = history[-1]
        result["dp"] = {"epsilon": last["dp_epsilon"], "delta": spec.dp.delta, "noise_multiplier":
                        last["dp_noise_multiplier"], "sample_rate": last["dp_sample_rate"], "steps": last["dp_steps"]}
    arrays = {"member": member, "canary": canary, "label": labels.numpy().astype(np.int16)}
    if spec.compact:
        arrays["phi"] = logit_confidence(logits.numpy(), labels.numpy()).astype(np.float16)
        arrays["correct"] = right
    else:
        arrays["logits"] = logits.numpy().astype(np.float16)
    if spec.holdout:
        h = torch.as_tensor(holdout_indices(len(ds.y_test), spec.holdout, spec.pool.seed))
        out, y = queries(ds.x_test[h]), ds.y_test[h]
        if spec.compact:
            arrays["holdout_phi"] = logit_confidence(out.numpy(), y.numpy()).astype(np.float16)
        else:
            arrays["holdout_logits"] = out.numpy().astype(np.float16)
        arrays["holdout_label"] = y.numpy().astype(np.int16)
    return result, arrays


engine.register(PoolModelSpec, "loo-", TRAINING_COMPONENTS, _compute, phase_keys)


def grid_specs(pool: Pool, model: str, cfg: TrainConfig, **defense) -> list[PoolModelSpec]:
    """The ``pool.n_models`` models of one configuration."""
    return [PoolModelSpec(pool, model, cfg, i, **defense) for i in range(pool.n_models)]
