"""DP-SGD and regularization (notebooks/dp_regularization.ipynb): 004's seven configurations (baseline, DP-SGD at
each ε, L2, dropout, both) on several data sets, model inversion from each layer, and 000's Table I."""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from . import (as_dict, TEST_SIZE, TRAIN_SIZE, ChapterParams, Profile, batch, count, epoch_count, fraction, members_fit,
               number, one_seed, plain, seed_list, width_factor, word)

DpDataset = Literal["mnist", "fashion_mnist", "cifar10"]  # the rows of 004's tables
# inversion.LAYERS: the layers of lomurno_cnn a decoder inverts
Layer = Literal["Conv1", "MaxPool1", "Conv2", "MaxPool2", "Conv3", "MaxPool3", "Dense", "Prediction"]
N_MAX = max(TRAIN_SIZE[d] for d in typing.get_args(DpDataset))
N_TEST = min(TEST_SIZE[d] for d in typing.get_args(DpDataset))


@dataclass(frozen=True)
class TableI:
    """000 Table I: DP-SGD at 000's ε beside MCMIA-Pruning (LeNet-5 on MNIST and a CNN on CIFAR-10)."""

    epsilon: float = number(gt=0, max=1000)
    epochs: int = epoch_count()
    batch_size: int = batch()
    lr: float = number(gt=0)
    momentum: float = fraction()
    curve_subset: int | None = count(2, 10000, "the test images of the data sets")  # None: every test image
    nn_epochs: int = epoch_count()
    seeds: list[int] = seed_list()
    cnn_width: float = width_factor()
    cnn_compression: float = number(min=1, max=1000)


@dataclass(frozen=True)
class Params(ChapterParams):
    """The DP-SGD and regularization chapter's parameters."""

    profile: Profile = plain()
    datasets: list[DpDataset] = word(nonempty=True, distinct=True)
    model: Literal["lomurno_cnn"] = word()  # 004's CNN (the model with dropout layers)
    width: float = width_factor()
    n_target: int | None = count(2, N_MAX, "the largest training set")  # None: every training image
    epochs: int = epoch_count()
    batch_size: int = batch()
    lr: float = number(gt=0)
    momentum: float = fraction()
    curve_subset: int | None = count(2, N_TEST, "the test images of the data sets")
    epsilons: list[float] = number(gt=0, max=1000, nonempty=True)  # DP-SGD's target ε, one configuration each
    delta: float = fraction(gt=0)
    clip_candidates: list[float] = number(gt=0, nonempty=True)  # DP-SGD clipping norms to choose from
    l2: float = number(gt=0)  # L2 weight on the prediction layer
    dropout: float = fraction(gt=0)
    nn_epochs: int = epoch_count(min=0)  # 0: no NN attack (004's attack and the threshold attacks run anyway)
    seeds: list[int] = seed_list()
    inversion_seed: int = one_seed()
    inversion_layers: list[Layer] = word(nonempty=True, distinct=True)
    inversion_epochs: int = epoch_count()
    inversion_n_train: int | None = count(1, N_MAX, "the largest training set")  # None: every member
    inversion_n_val: int = count(1, N_MAX, "the largest training set")
    inversion_n_test: int | None = count(1, N_TEST, "the test images")  # None: all
    table_i: TableI = plain()

    @classmethod
    def relations(cls, p):
        yield from members_fit("n_target", p.n_target, p.datasets)


STAGES = 2


def stages(p: Params, store=None):
    """Stage 1: the clipping-norm candidates' validation accuracies. Stage 2, with the chosen norm: 004's runs
    per data set, configuration and seed, Table I's DP-SGD and MCMIA columns, and the inversion decoders."""
    from ..experiments import (choose_clip, clip_candidates, dp_column_spec, lomurno_configs, lomurno_spec,
                               mcmia_spec, table_i_rows)
    from ..inversion import InversionSpec
    from . import read
    q = as_dict(p)
    yield [v for d in p.datasets for v in clip_candidates({**q, "dataset": d}).values()]
    clip = {d: choose_clip({**q, "dataset": d}, store=store)[0] for d in p.datasets}
    spec = lambda d, c, s: lomurno_spec({**q, "dataset": d, "max_grad_norm": clip[d]}, c, s)  # noqa: E731
    configs = lomurno_configs(p.epsilons)
    runs = [spec(d, c, s) for d in p.datasets for c in configs for s in p.seeds]
    inversions = [InversionSpec(spec(d, c, p.inversion_seed), layer, epochs=p.inversion_epochs,
                                n_train=p.inversion_n_train, n_val=p.inversion_n_val, n_test=p.inversion_n_test)
                  for layer in p.inversion_layers for d in p.datasets for c in configs]
    t = q["table_i"]
    rows = table_i_rows(t, as_dict(read("mcmia_lenet5", p.profile)), as_dict(read("mcmia_cifar10", p.profile)),
                        clip, p.delta)
    table_i = [s for dp_p, mcmia_p in rows.values() for seed in t["seeds"]
               for s in (dp_column_spec(dp_p, seed), mcmia_spec(mcmia_p, "pruning", seed))]
    yield runs + table_i + inversions
