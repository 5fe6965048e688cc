"""Quickstart (notebooks/quickstart.ipynb): an MLP on scikit-learn's digits, attacked by the threshold and NN
attacks."""
from __future__ import annotations

from dataclasses import dataclass

from . import TRAIN_SIZE, ChapterParams, Profile, batch, count, epoch_count, number, plain, seed_list


@dataclass(frozen=True)
class Params(ChapterParams):
    """The quickstart's parameters."""

    profile: Profile = plain()
    n_target: int = count(2, TRAIN_SIZE["digits"], "the training images of digits")  # members of the target
    epochs: int = epoch_count()  # target training epochs
    batch_size: int = batch()
    lr: float = number(gt=0)  # Adam's learning rate
    nn_epochs: int = epoch_count()  # NN attack training epochs (0 would store an untrained attack)
    seeds: list[int] = seed_list()
