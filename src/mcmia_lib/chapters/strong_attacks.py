"""Strong attacks (notebooks/strong_attacks.ipynb): LiRA and RMIA with every model of a leave-one-out grid the
target in turn, on the undefended model and DP-SGD, with canaries and an empirical ε."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import (as_dict, TRAIN_SIZE, ChapterParams, Model, Profile, batch, count, epoch_count, fraction, number, one_seed,
               plain, width_factor, word)

StrongDataset = Literal["mnist", "fashion_mnist"]  # the chapter's rows


@dataclass(frozen=True)
class Params(ChapterParams):
    """The strong-attack chapter's parameters."""

    profile: Profile = plain()
    datasets: list[StrongDataset] = word(nonempty=True, distinct=True)
    model: Model = word()
    width: float = width_factor()
    n_pool: int = count(2, TRAIN_SIZE["mnist"], "the training images of mnist")  # examples the models train on
    n_canary: int = count(0, TRAIN_SIZE["mnist"], "the training images of mnist")  # mislabeled among them
    n_models: int = count(2, 1024, "1,024 models per configuration")  # even: each example in exactly half
    pool_seed: int = one_seed()
    epochs: int = epoch_count()
    batch_size: int = batch()
    lr: float = number(gt=0)
    momentum: float = fraction()
    curve_subset: int | None = count(2, 10000, "the test images")
    epsilons: list[float] = number(gt=0, max=1000, nonempty=True)  # DP-SGD's target ε, one configuration each
    delta: float = fraction(gt=0)
    max_grad_norm: float = number(gt=0)
    ref_counts: list[int] = count(1, 1024, nonempty=True, distinct=True)  # reference models per attack
    n_boot: int = count(2, 100_000)  # bootstrap draws of the intervals

    @classmethod
    def relations(cls, p):
        if p.n_models % 2:
            yield "n_models", f"must be even (each example a member of exactly half), got {p.n_models}"
        if p.n_canary > p.n_pool:
            yield "n_canary", f"must be <= n_pool ({p.n_pool}), got {p.n_canary}"
        too_many = [r for r in p.ref_counts if r > p.n_models - 2]
        if too_many:
            yield "ref_counts", (f"each must be <= n_models - 2 ({p.n_models - 2}: an example has n_models / 2 - 1 "
                                 f"models on its smaller side), got {too_many[0]}")


def stages(p: Params, store=None):
    """One stage: the leave-one-out grid of each data set and configuration."""
    from ..experiments import strong_attack_specs
    yield [s for specs in strong_attack_specs(as_dict(p)).values() for s in specs]
