"""Sparsity (notebooks/sparsity.ipynb): 002's dense, butterfly and IMP-pruned ResNet-20 networks and their
privacy-accuracy trade-off against 002's discriminators."""
from __future__ import annotations

from dataclasses import dataclass

from . import (as_dict, TEST_SIZE, TRAIN_SIZE, ChapterParams, Dataset, Profile, batch, count, epoch_count, fraction, number,
               one_seed, plain, seed_list, word)


@dataclass(frozen=True)
class Hyper:
    """Learning rate and weight decay of one kind of network (002's Table 1)."""

    lr: float = number(gt=0)
    weight_decay: float = number(min=0)


@dataclass(frozen=True)
class Butterfly:
    """One butterfly network: its segments and factors, learning rate and weight decay."""

    segments: int = count(1, 16)
    factors: int = count(1, 16)
    lr: float = number(gt=0)
    weight_decay: float = number(min=0)


@dataclass(frozen=True)
class Imp:
    """Iterative magnitude pruning: the numbers of prunings to train, the fraction kept per pruning, and its
    learning rate and weight decay."""

    prunings: list[int] = count(1, 100, nonempty=True, distinct=True)
    keep: float = fraction(gt=0)
    lr: float = number(gt=0)
    weight_decay: float = number(min=0)


@dataclass(frozen=True)
class Attack:
    """002's discriminators (attacks.gonon.GononAttack); an absent key keeps its default."""

    eps: float = number(gt=0, default=None)
    draws: int = count(1, 1000, default=None)
    epochs: int = epoch_count(default=None)
    hidden: list[list[int]] = count(1, 100_000, default=None)  # hidden layer sizes per discriminator
    lrs: list[float] = number(gt=0, default=None)
    batch_size: int = batch(default=None)


@dataclass(frozen=True)
class Params(ChapterParams):
    """The sparsity chapter's parameters."""

    profile: Profile = plain()
    dataset: Dataset = word()
    part: int = count(2, 15000, "a quarter of CIFAR-10's 60,000 images")  # images per part (4 parts)
    val: int = count(1, 15000)  # of each training part, held out for validation (< part)
    split_seed: int = one_seed()
    epochs: int = epoch_count()
    batch_size: int = batch()
    momentum: float = fraction()
    flip: bool = plain()
    crop_pad: int = count(0, 16)
    dense: Hyper = plain()
    butterfly: list[Butterfly] = plain()
    imp: Imp = plain()
    attack: Attack = plain()
    n_attack: int | None = count(2, 15000)  # examples per side the discriminators see (None: all)
    runs: list[int] = seed_list()  # the runs (seeds of the networks)

    @classmethod
    def relations(cls, p):
        pooled = TRAIN_SIZE[p.dataset] + TEST_SIZE[p.dataset]
        if 4 * p.part > pooled:
            yield "part", f"must be <= {pooled // 4} (four parts of the {pooled} images of {p.dataset}), got {p.part}"
        if p.val >= p.part:
            yield "val", f"must be < part ({p.part}), got {p.val}"


def stages(p: Params, store=None):
    """One stage: every network of 002 (dense, pruned, butterfly) per run."""
    from ..experiments import gonon_nets, gonon_spec
    q = as_dict(p)
    yield [gonon_spec(q, net, r) for net in gonon_nets(q) for r in p.runs]
