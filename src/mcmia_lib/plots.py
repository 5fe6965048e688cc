"""Seaborn figures shared by the chapters."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .metrics import roc_curve
from .report import ATTACK_NAMES


def setup():
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight"})


def history_frame(entries) -> pd.DataFrame:
    return pd.DataFrame([{**h, "seed": e.spec["seed"]} for e in entries for h in e.result["history"]])


def training_curves(entries, title: str = ""):
    """Train/test loss and accuracy per epoch (mean ± sd band over seeds), and the loss attack's AUC on
    the evaluation set after each epoch."""
    df = history_frame(entries)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    loss = df.melt(["epoch", "seed"], ["train_loss", "test_loss"], "set", "loss")
    sns.lineplot(loss, x="epoch", y="loss", hue="set", errorbar="sd", ax=axes[0])
    axes[0].set_yscale("log")
    acc = df.melt(["epoch", "seed"], ["train_acc", "test_acc"], "set", "accuracy")
    sns.lineplot(acc, x="epoch", y="accuracy", hue="set", errorbar="sd", ax=axes[1])
    if "loss_attack_auc" in df:
        sns.lineplot(df, x="epoch", y="loss_attack_auc", errorbar="sd", ax=axes[2], color="C3")
        axes[2].axhline(0.5, ls=":", c="grey")
        axes[2].set_ylabel("loss-attack AUC (evaluation set)")
    axes[0].set_title("classification loss")
    axes[1].set_title("classification accuracy")
    axes[2].set_title("leakage after each epoch")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def attack_training(entries_by_label: dict, title: str = ""):
    """NN attack: evaluation accuracy and training loss per attack epoch (lower row of 000's Figure 2)."""
    rows = [{**h, "seed": e.spec["seed"], "attack": label}
            for label, entries in entries_by_label.items() for e in entries
            for h in e.result["attacks"]["nn"]["history"]]
    df = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    sns.lineplot(df, x="epoch", y="eval_accuracy", hue="attack", errorbar="sd", ax=axes[0])
    axes[0].axhline(0.5, ls=":", c="grey")
    axes[0].set_ylabel("attack accuracy (evaluation set)")
    sns.lineplot(df, x="epoch", y="train_loss", hue="attack", errorbar="sd", ax=axes[1], legend=False)
    axes[1].axhline(np.log(2), ls=":", c="grey")
    axes[1].set_ylabel("attack training loss (BCE)")
    for ax in axes:
        ax.set_xlabel("attack epoch")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc_loglog(entry, attacks=None, title: str = ""):
    """ROC curves on log-log axes (the low-FPR regime is where membership leaks matter)."""
    member = entry.arrays["eval_member"]
    attacks = attacks or [k[6:] for k in entry.arrays if k.startswith("score_")]
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    floor = 1.0 / (member == 0).sum()
    for a in attacks:
        fpr, tpr, _ = roc_curve(member, entry.arrays[f"score_{a}"])
        ax.plot(np.maximum(fpr, floor / 2), np.maximum(tpr, floor / 2), label=ATTACK_NAMES.get(a, a), lw=1.6)
    grid = np.logspace(np.log10(floor / 2), 0, 50)
    ax.plot(grid, grid, ls=":", c="grey", label="chance")
    ax.set(xscale="log", yscale="log", xlabel="false positive rate", ylabel="true positive rate",
           xlim=(floor / 2, 1), ylim=(floor / 2, 1.05), title=title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def loss_histograms(entry, title: str = ""):
    """Cross-entropy of members vs non-members of the evaluation set on a log axis (where they differ)."""
    ce = np.maximum(-entry.arrays["score_loss"], 1e-300)
    df = pd.DataFrame({"log10 cross-entropy": np.log10(ce),
                       "set": np.where(entry.arrays["eval_member"] == 1, "member", "non-member")})
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    sns.histplot(df, x="log10 cross-entropy", hue="set", bins=60, stat="density", common_norm=False,
                 element="step", ax=ax)
    ax.set(title=title)
    fig.tight_layout()
    return fig
