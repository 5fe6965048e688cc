"""Quickstart (notebooks/quickstart.ipynb): an MLP on scikit-learn's digits, attacked by the threshold and NN
attacks."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import TRAIN_SIZE, ChapterParams, Results, as_dict, entries, Profile, batch, count, epoch_count, number, plain, seed_list


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


def stages(p: Params, store=None):
    """One stage: the target of each seed, attacked."""
    from ..experiments import quickstart_spec
    yield [quickstart_spec(as_dict(p), s) for s in p.seeds]


@dataclass
class QuickstartResults(Results):
    targets: list  # the target of each seed (entries)
    sizes: pd.DataFrame  # examples per set
    utility: pd.DataFrame  # train / test accuracy and loss, mean ± std over seeds
    attacks: pd.DataFrame  # every attack's metrics (``tables.attack_table``)


def results(p: Params, store=None) -> QuickstartResults:
    from ..report import tables
    e = entries(stages(p, store), store)
    targets = e(next(stages(p, store)))
    accs = lambda k: [t.result[k] for t in targets]  # noqa: E731
    utility = pd.DataFrame({
        "train accuracy (%)": tables.fmt(accs("train_acc")),
        "test accuracy (%)": tables.fmt(accs("test_acc")),
        "train loss": tables.fmt(accs("train_loss"), digits=4, scale=1),
        "test loss": tables.fmt(accs("test_loss"), digits=4, scale=1),
    }, index=["target MLP"])
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    attack = lambda a, k: mean([t.attack(a)[k] for t in targets])  # noqa: E731
    glue = {"qs_loss_auc": 100 * attack("loss", "auc"), "qs_loss_tpr": 100 * attack("loss", "tpr@0.01"),
            "qs_nn_auc": 100 * attack("nn", "auc"),
            "qs_gap": 100 * mean([t.train_acc - t.test_acc for t in targets]),
            "qs_seeds": len(targets)}
    return QuickstartResults({"all tables and figures": targets}, glue, targets,
                             pd.DataFrame([targets[0].result["n"]], index=["examples"]), utility,
                             tables.attack_table(targets))
