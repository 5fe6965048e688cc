"""MNIST LeNet-5 baseline (notebooks/mnist_lenet5_baseline.ipynb): 000's undefended target and its NN attack
with two initialisations, and a probe of the papers' printed learning rate."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import (as_dict, TRAIN_SIZE, ChapterParams, Optimizer, Profile, batch, count, epoch_count, number, plain, seed_list,
               width_factor, word)

NNInit = Literal["default", "normal"]


@dataclass(frozen=True)
class Params(ChapterParams):
    """The baseline chapter's parameters."""

    profile: Profile = plain()
    n_target: int | None = count(2, TRAIN_SIZE["mnist"], "the training images of mnist")  # None: all of them
    width: float = width_factor()
    epochs: int = epoch_count()
    batch_size: int = batch()
    lr: float = number(gt=0)
    optimizer: Optimizer = word()
    nn_epochs: int = epoch_count()
    nn_inits: list[NNInit] = word(nonempty=True, distinct=True)  # the first is the chapter's headline
    seeds: list[int] = seed_list()
    printed_lr_epochs: int = epoch_count()  # epochs of the probe at the printed learning rate


def stages(p: Params, store=None):
    """One stage: the probe network, and the target of each seed attacked by the NN attack of each init."""
    from ..experiments import baseline_probe_spec, lenet5_baseline_spec
    q = as_dict(p)
    yield [baseline_probe_spec(q)] + [lenet5_baseline_spec(q, s, init) for init in p.nn_inits for s in p.seeds]
