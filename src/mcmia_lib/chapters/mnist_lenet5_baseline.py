"""MNIST LeNet-5 baseline (notebooks/mnist_lenet5_baseline.ipynb): 000's undefended target and its NN attack
with two initialisations, and a probe of the papers' printed learning rate."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from . import (Results, as_dict, entries, TRAIN_SIZE, ChapterParams, Optimizer, Profile, batch, count, epoch_count, number, plain, seed_list,
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


ROW = "MNIST-LeNet-5"  # 000's Table II row


@dataclass
class BaselineResults(Results):
    settings: pd.DataFrame  # this run's parameters beside the paper profile's
    sizes: pd.DataFrame  # LeNet-5's parameters and the split's set sizes
    probe: pd.DataFrame  # per epoch: training at the printed learning rate
    runs: dict  # NN-attack init -> the targets of each seed (entries)
    headline: pd.DataFrame  # test and NN-attack accuracy beside Table II
    attacks: pd.DataFrame  # every attack on the targets (``tables.attack_table``)
    collapsed: dict  # NN-attack init -> how many of its attacks output a constant score
    verdicts: pd.DataFrame  # the chapter's claim, decided (``verdicts.claim_table``)

    @property
    def targets(self) -> list:
        """The targets with the headline's NN attack (the first init)."""
        return next(iter(self.runs.values()))


def results(p: Params, store=None) -> BaselineResults:
    import numpy as np

    from .. import claims as claim_lib, data
    from ..report import references, tables
    from ..report.verdicts import claim_table
    from ..experiments import baseline_probe_spec, lenet5_baseline_spec
    from ..models import build_model, count_parameters
    from . import read
    q = as_dict(p)
    e = entries(stages(p, store), store)
    lenet = build_model("lenet5", 10, (1, 28, 28), p.width)
    mnist = data.load_dataset("mnist")
    split = data.membership_split(len(mnist.y_train), len(mnist.y_test), p.seeds[0], p.n_target)
    sizes = pd.DataFrame({"parameters": [count_parameters(lenet)],
                          "target train": [len(split.target_train)], "attack D (members)": [len(split.attack_in)],
                          "attack D' (non-members)": [len(split.attack_out)],
                          "evaluation members": [len(split.eval_in)],
                          "evaluation non-members": [len(split.eval_out)]}, index=[mnist.label])
    probe = e[baseline_probe_spec(q)]
    probe_table = pd.DataFrame([{"epoch": h["epoch"], "lr": h["lr"], "train loss": round(h["train_loss"], 3),
                                 "train accuracy (%)": round(100 * h["train_acc"], 2),
                                 "test accuracy (%)": round(100 * h["test_acc"], 2)}
                                for h in probe.history]).set_index("epoch")
    runs = {init: e([lenet5_baseline_spec(q, s, init) for s in p.seeds]) for init in p.nn_inits}
    targets = runs[p.nn_inits[0]]
    paper_attack = references.reference(ROW, "baseline attack accuracy", table="II")
    headline = tables.paper_vs_ours([
        ("test accuracy (%)", references.reference(ROW, "baseline test accuracy", table="II"),
         [t.test_acc for t in targets]),
        (f"NN attack accuracy (%), init={p.nn_inits[0]}", paper_attack,
         [t.attack("nn")["accuracy"] for t in targets]),
    ])
    verdicts = claim_table(claim_lib.baseline_leaks(targets, paper_attack["value"], ROW))

    gap = [t.train_acc - t.test_acc for t in targets]
    nn_acc = [t.attack("nn")["accuracy"] for t in targets]
    mean_of = lambda a, k: 100 * np.mean([t.attack(a)[k] for t in targets])  # noqa: E731
    aucs = {a: mean_of(a, "auc") for a in tables.ATTACK_NAMES}
    best_tpr = max(tables.ATTACK_NAMES, key=lambda a: mean_of(a, "tpr@0.01"))
    probe_auc = np.array([[h["loss_attack_auc"] for h in t.history] for t in targets]).mean(0)
    table_v = references.reference("MNIST-LeNet", "weights", table="V")
    glue = {
        "lenet_params": count_parameters(lenet), "lenet_params_paper": table_v["value"],
        "lenet_params_diff": 100 * (count_parameters(lenet) / table_v["value"] - 1),
        "mn_test_acc": 100 * np.mean([t.test_acc for t in targets]),
        "mn_train_acc": 100 * np.mean([t.train_acc for t in targets]),
        "mn_gap": 100 * np.mean(gap),
        "mn_train_loss": np.mean([t.result["train_loss"] for t in targets]),
        "mn_test_loss": np.mean([t.result["test_loss"] for t in targets]),
        "mn_nn_acc": 100 * np.mean(nn_acc), "mn_nn_std": 100 * np.std(nn_acc, ddof=1) if len(nn_acc) > 1 else 0.0,
        "mn_paper_attack": paper_attack["value"],
        "mn_auc_min": min(aucs.values()), "mn_auc_max": max(aucs.values()),
        "mn_best_tpr_name": tables.ATTACK_NAMES[best_tpr], "mn_best_tpr": mean_of(best_tpr, "tpr@0.01"),
        "mn_final_probe_auc": 100 * probe_auc[-1], "mn_first_probe_auc": 100 * probe_auc[0],
        "mn_max_probe_auc": 100 * probe_auc.max(), "mn_seeds": len(targets),
        "mn_saturated": 100 * np.mean([float(np.mean(t.arrays["eval_prob_true"] == 1.0)) for t in targets]),
        "mn_verdict": verdicts["verdict"].iloc[0],
        "mn_test_acc_diff": abs(headline.iloc[0, -1]),
        "mn_pruning_gain": paper_attack["value"]
        - references.reference(ROW, "MCMIA-Pruning attack accuracy", table="II")["value"],
    }
    collapsed = {init: sum(t.attack("nn")["collapsed"] for t in ts) for init, ts in runs.items()}
    return BaselineResults(
        {"probe at the printed learning rate": [probe], "headline, attacks, verdict, figures": targets,
         "NN attack initialisations": [t for ts in runs.values() for t in ts]}, glue,
        tables.settings_table(q, as_dict(read("mnist_lenet5_baseline", "paper"))), sizes, probe_table, runs,
        headline, tables.attack_table(targets), collapsed, verdicts)
