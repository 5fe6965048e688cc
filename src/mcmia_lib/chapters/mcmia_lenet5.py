"""MCMIA on MNIST LeNet-5 (notebooks/mcmia_lenet5.ipynb): the four regimes of 000/001 (baseline, MCMIA-Pruning,
Min-Max, Pruning & Min-Max) and Algorithm 1's choice of per-layer pruning rates."""
from __future__ import annotations

from dataclasses import dataclass

from . import (as_dict, TRAIN_SIZE, ChapterParams, Dataset, Model, Optimizer, Profile, batch, count, epoch_count, fraction,
               members_fit, number, one_seed, plain, seed_list, width_factor, word)


@dataclass(frozen=True)
class Params(ChapterParams):
    """The LeNet-5 MCMIA chapter's parameters."""

    profile: Profile = plain()
    dataset: Dataset = word()
    model: Model = word()
    width: float = width_factor()
    n_target: int | None = count(2, max(TRAIN_SIZE.values()), "the largest training set")  # None: all images
    epochs: int = epoch_count()  # baseline and Min-Max training epochs
    pretrain_epochs: int | None = epoch_count()  # the pruned regimes' pretraining (None: ``epochs``)
    batch_size: int = batch()
    lr: float = number(gt=0)
    optimizer: Optimizer = word()
    rates: list[float] = fraction()  # per-layer pruning rates, each in [0, 1)
    admm_epochs: int = epoch_count()
    retrain_epochs: int = epoch_count()
    rho: float = number(gt=0)  # ADMM penalty
    rho_growth: float = number(min=1, max=10)  # its factor per epoch
    minmax_lam: float = number(min=0)  # weight of the adversarial term
    minmax_steps: int = count(1, 1000)  # attack-model steps per target step
    minmax_attack_lr: float = number(gt=0)
    nn_epochs: int = epoch_count()
    seeds: list[int] = seed_list()
    figure_seed: int = one_seed()  # the seed whose networks the figures show
    rate_candidates: list[list[float]] = fraction()  # Algorithm 1's candidate rate vectors

    @classmethod
    def relations(cls, p):
        yield from members_fit("n_target", p.n_target, [p.dataset])
        for i, r in enumerate(p.rate_candidates):
            if len(r) != len(p.rates):
                yield f"rate_candidates[{i}]", f"must have one rate per layer ({len(p.rates)}, as rates), got {len(r)}"


def stages(p: Params, store=None):
    """One stage: every method of 000/001 per seed, and the pruning-rate candidates (Algorithm 1) on the first."""
    from ..experiments import METHODS, mcmia_spec
    q = as_dict(p)
    yield ([mcmia_spec(q, m, s) for m in METHODS for s in p.seeds]
           + [mcmia_spec(q, "pruning", p.seeds[0], rates=r) for r in p.rate_candidates])
