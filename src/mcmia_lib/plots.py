"""Seaborn figures shared by the chapters."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter
import numpy as np
import pandas as pd
import seaborn as sns

from .metrics import roc_curve
from .report import tables
from .report.tables import ATTACK_NAMES


def setup():
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight"})


def history_frame(entries) -> pd.DataFrame:
    return pd.DataFrame([{**h, "seed": e.spec["seed"]} for e in entries for h in e.history])


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
            for h in e.attack("nn")["history"]]
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


def weight_distributions(models: dict, title: str = ""):
    """Histograms of the conv/linear weights of each model (000 Figure 3); zeros (pruned weights) are
    counted in the legend rather than drawn, so the surviving weights stay visible."""
    from .defenses.pruning import prunable
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.2), sharex=True)
    for ax, (label, model) in zip(np.atleast_1d(axes), models.items()):
        w = np.concatenate([p.detach().cpu().numpy().ravel() for _, p in prunable(model)])
        nz = w[w != 0]
        sns.histplot(nz, bins=120, ax=ax, stat="count", element="step", color="C0")
        ax.set(yscale="log", xlabel="weight value", title=f"{label}\n{nz.size:,} non-zero, {w.size - nz.size:,} zero")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def probability_histograms(entries_by_label: dict, title: str = ""):
    """Predicted probability of the true class for members (training data) and non-members (test data) of
    the evaluation set, one column per method (000 Figure 4), pooled over seeds."""
    rows = [pd.DataFrame({"p(true class)": e.arrays["eval_prob_true"], "method": label,
                          "data": np.where(e.arrays["eval_member"] == 1, "members (training)", "non-members (test)")})
            for label, entries in entries_by_label.items() for e in entries]
    g = sns.displot(pd.concat(rows), x="p(true class)", col="method", row="data", bins=40, stat="probability",
                    height=2.4, aspect=1.2, facet_kws={"sharey": False, "margin_titles": True}, color="C0")
    g.set(yscale="log")
    g.set_titles(col_template="{col_name}", row_template="{row_name}")
    g.figure.suptitle(title, y=1.03)
    return g.figure


def gap_vs_attack(entries_by_label: dict, title: str = ""):
    """000 Figure 5: per class, the training − test accuracy gap against the NN attack's accuracy on that
    class (``tables.per_class_gap``), one point per class and seed."""
    df = tables.per_class_gap(entries_by_label)
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    sns.scatterplot(df, x="train-test accuracy gap (%)", y="NN attack accuracy (%)", hue="method", style="method",
                    s=50, ax=ax)
    ax.axhline(50, ls=":", c="grey")
    ax.set(title=title)
    fig.tight_layout()
    return fig


def loss_and_attack_curves(entries_by_label: dict, title: str = ""):
    """000 Figure 2: upper row, the classification loss per training epoch (phases of a pruned model run on
    one after another; dotted lines mark where ADMM and retraining start); lower row, the NN attack's
    evaluation accuracy per attack-training epoch. One column per method, mean ± sd over seeds."""
    n = len(entries_by_label)
    fig, axes = plt.subplots(2, n, figsize=(3.7 * n, 6.0), squeeze=False)
    for j, (label, entries) in enumerate(entries_by_label.items()):
        rows = []
        for e in entries:
            starts = {}
            for i, h in enumerate(e.history):
                starts.setdefault(h.get("phase", "train"), i + 1)
                rows += [{"epoch": i + 1, "seed": e.spec["seed"], "loss": h[k], "set": k[:-5]}
                         for k in ("train_loss", "test_loss") if k in h]
        ax = axes[0, j]
        sns.lineplot(pd.DataFrame(rows), x="epoch", y="loss", hue="set", errorbar="sd", ax=ax, legend=j == 0)
        for phase, start in starts.items():
            if start > 1:
                ax.axvline(start - 0.5, ls=":", c="grey")
                ax.text(start, 0.98, phase, fontsize=8, color="grey", rotation=90, ha="left",
                        transform=ax.get_xaxis_transform(), va="top")
        ax.set(yscale="log", title=label, xlabel="training epoch", ylabel="classification loss" if j == 0 else "")
        att = pd.DataFrame([{**h, "seed": e.spec["seed"]} for e in entries for h in e.attack("nn")["history"]])
        ax = axes[1, j]
        sns.lineplot(att, x="epoch", y="eval_accuracy", errorbar="sd", ax=ax, color="C3")
        ax.axhline(0.5, ls=":", c="grey")
        ax.set(xlabel="attack epoch", ylabel="NN attack accuracy" if j == 0 else "")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def minmax_gain_curves(entries_by_label: dict, title: str = ""):
    """The Min-Max inference model's gain G (batch estimate, mean per epoch) during the classifier's
    training; −log 4 is an inference model at chance."""
    rows = [{"epoch": i + 1, "gain G": h["minmax_gain"], "method": label, "seed": e.spec["seed"]}
            for label, entries in entries_by_label.items() for e in entries
            for i, h in enumerate(x for x in e.history if "minmax_gain" in x)]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    sns.lineplot(pd.DataFrame(rows), x="epoch", y="gain G", hue="method", errorbar="sd", ax=ax)
    ax.axhline(-np.log(4), ls=":", c="grey", label="chance (−log 4)")
    ax.set(xlabel="epoch with the Min-Max term", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def inversion_mse_bars(df: pd.DataFrame, title: str = ""):
    """004 Fig. 4: reconstruction MSE from each layer of the undefended target (one bar per layer, one
    colour per dataset). ``df``: columns layer, dataset, test MSE."""
    fig, ax = plt.subplots(figsize=(10, 3.6))
    sns.barplot(df, x="layer", y="test MSE", hue="dataset", ax=ax)
    ax.set_ylabel("reconstruction MSE (test set)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def reconstructions(rows: dict, originals: np.ndarray, layers, title: str = ""):
    """004 Fig. 5: for one test image, the original and its reconstruction from each layer (columns), one row
    per configuration. ``rows``: configuration -> list of uint8 images (C, H, W), one per layer."""
    def show(ax, img):
        img = np.asarray(img)
        ax.imshow(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
    fig, axes = plt.subplots(len(rows), len(layers) + 1, figsize=(1.3 * (len(layers) + 1), 1.4 * len(rows)),
                             squeeze=False)
    for r, (config, images) in enumerate(rows.items()):
        show(axes[r, 0], originals)
        axes[r, 0].set_ylabel(config, rotation=0, ha="right", va="center", fontsize=9)
        for c, img in enumerate(images):
            show(axes[r, c + 1], img)
            if r == 0:
                axes[r, c + 1].set_title(layers[c], fontsize=9)
    axes[0, 0].set_title("original", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def tradeoff(df: pd.DataFrame, title: str = ""):
    """004 Fig. 6: test accuracy against the change of the black-box inversion MSE (left) and of the MIA AUC
    (right), in % of the baseline, averaged over datasets; marker size = training time relative to the
    baseline. ``df``: columns configuration, accuracy, MSE change (%), AUC change (%), time ratio."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x in zip(axes, ("MSE change (%)", "AUC change (%)")):
        sns.scatterplot(df, x=x, y="accuracy", hue="configuration", size="time ratio", sizes=(40, 400), ax=ax,
                        legend=ax is axes[1])
        ax.axvline(0, ls=":", c="grey")
    axes[0].set_title("black-box model inversion (higher = better defended)")
    axes[1].set_title("membership inference (lower = better defended)")
    sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _by_sparsity(ax, df: pd.DataFrame, x: str, size: float):
    """Defense against column ``x``, one marker per network family (dense, IMP, butterfly), coloured by the
    % of nonzero weights, the dense reference drawn on top; returns the last scatter, for the colour bar."""
    markers = {"Dense": "s", "IMP": "*", "Butterfly": "o"}
    norm = plt.Normalize(0, 100)
    for family, g in df.groupby("family", sort=False):
        sc = ax.scatter(g[x], g["defense"], c=g["nonzero %"], cmap="viridis", norm=norm, s=size,
                        marker=markers.get(family, "o"), edgecolor="k", label=family,
                        zorder=4 if family == "Dense" else 3)
    return sc


def _defense_axes(fig, ax, sc, xlabel: str, title: str):
    fig.colorbar(sc, ax=ax, label="% of nonzero weights")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("defense D = 200 − 2A")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def defense_vs_accuracy(df: pd.DataFrame, slope: float | None = None, paper_slope: float | None = None,
                        title: str = ""):
    """002 Fig. 1: defense D against test accuracy, mean ± std over runs, one marker per network, IMP and
    butterfly as two series coloured by their % of nonzero weights (annotated). ``df``: columns family,
    label, nonzero %, accuracy, accuracy std, defense, defense std. Lines through the dense network: our fitted
    slope and 002's (both in D points per accuracy point)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.errorbar(df["accuracy"], df["defense"], xerr=df["accuracy std"], yerr=df["defense std"], fmt="none",
                ecolor="0.6", lw=1, zorder=1)
    sc = _by_sparsity(ax, df, "accuracy", 90)
    for _, r in df.iterrows():
        ax.annotate(f"{r['nonzero %']:.1f}%", (r["accuracy"], r["defense"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)
    dense = df[df["family"] == "Dense"].iloc[0]
    xs = np.linspace(df["accuracy"].min(), df["accuracy"].max(), 2)
    for s, style, name in ((slope, "-", "fitted"), (paper_slope, "--", "002's line")):
        if s is not None:
            ax.plot(xs, dense["defense"] + s * (xs - dense["accuracy"]), style, c="C3", lw=1,
                    label=f"{name}: slope {s:.2f}")
    return _defense_axes(fig, ax, sc, "target test accuracy (%)", title)


def relative_tradeoff(pts: pd.DataFrame, slope: float, paper_slope: float, title: str = ""):
    """002's 3.6·p% claim: each run's relative defense gain against its relative accuracy loss (both in % of
    that run's dense network), one colour per network, with the fitted line through the origin (the mean of the
    per-run slopes) and 002's.
    ``pts``: columns label, relative accuracy loss, relative defense gain (fractions)."""
    df = pts.assign(x=100 * pts["relative accuracy loss"], y=100 * pts["relative defense gain"])
    fig, ax = plt.subplots(figsize=(7, 4.4))
    sns.scatterplot(df, x="x", y="y", hue="label", style="label", s=70, ax=ax)
    ax.axhline(0, ls=":", c="grey")
    ax.axvline(0, ls=":", c="grey")
    xs = np.linspace(min(df["x"].min(), 0), max(df["x"].max(), 0), 2)
    ax.plot(xs, slope * xs, "-", c="C3", lw=1, label=f"fitted (mean over runs): gain = {slope:.2f} × loss")
    ax.plot(xs, paper_slope * xs, "--", c="C3", lw=1, label=f"002: gain = {paper_slope:g} × loss")
    ax.set_xlabel("relative accuracy loss vs dense (%)")
    ax.set_ylabel("relative defense gain vs dense (%)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def defense_vs_gap(df: pd.DataFrame, title: str = ""):
    """Each run's defense D against its target's train − test accuracy gap, marker per family, colour by % of
    nonzero weights, with a least-squares line over all runs: does D follow over-fitting rather than sparsity?
    ``df``: columns family, nonzero %, gap, defense."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    sns.regplot(df, x="gap", y="defense", scatter=False, ci=95, color="0.4", line_kws={"lw": 1}, ax=ax)
    sc = _by_sparsity(ax, df, "gap", 70)
    return _defense_axes(fig, ax, sc, "target train − test accuracy (points)", title)


def seed_curves(entries_by_dataset: dict, title: str = ""):
    """Test accuracy after each epoch, one thin line per seed, one panel per dataset, one colour per
    configuration: shows run-to-run instability that a mean ± sd band would hide.
    ``entries_by_dataset``: {dataset: {configuration: [entries]}}."""
    n = len(entries_by_dataset)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.8), squeeze=False)
    for ax, (name, by_config) in zip(axes[0], entries_by_dataset.items()):
        df = pd.DataFrame([{"epoch": h["epoch"], "test accuracy": h["test_acc"], "seed": e.spec["seed"],
                            "configuration": c}
                           for c, es in by_config.items() for e in es for h in e.history])
        sns.lineplot(df, x="epoch", y="test accuracy", hue="configuration", units="seed", estimator=None,
                     lw=0.9, marker=".", ax=ax, legend=ax is axes[0, -1])
        ax.set_title(name)
    sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def overhead_ratios(bench: dict, goal: float, paper: tuple[float, float], title: str = ""):
    """Per-round DP-SGD / non-private time ratios of ``benchmarks/dp_overhead.py`` (dots; bar = median), on a
    log axis beside the ``goal`` and the paper's range ``paper`` = (low, high)."""
    df = pd.DataFrame([{"case": c, "ratio": r} for c, rs in bench["cases"].items() for r in rs])
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(bench["cases"]) + 1.6))
    ax.axvspan(*paper, color="tab:red", alpha=0.15, label=f"004: {paper[0]:.0f}–{paper[1]:.0f}× (TF Privacy, GPU)")
    ax.axvline(goal, color="k", ls="--", lw=1, label=f"goal ≤ {goal:g}×")
    sns.stripplot(df, x="ratio", y="case", ax=ax, size=6, alpha=0.7, jitter=0.15)
    sns.pointplot(df, x="ratio", y="case", estimator="median", errorbar=None, markers="|", markersize=20,
                  linestyle="none", color="k", ax=ax)
    ax.set_xscale("log")
    ax.set_xlim(1, paper[1] * 1.3)
    ticks = [t for t in (1, 2, 3, 5, 10, 20, 50, 100) if t <= paper[1] * 1.3]
    ax.set_xticks(ticks, [f"{t:g}×" for t in ticks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xlabel("time of a DP-SGD epoch / time of a non-private epoch (log scale)")
    ax.set_ylabel("")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def strong_roc(panels: dict, title: str = ""):
    """Log-log ROC curves of several attacks per panel: ``panels`` maps a panel title to {attack: (is_member,
    score)} (all targets pooled). The dotted diagonal is chance; FPRs below one non-member are not drawn."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 4.1), squeeze=False, sharey=True)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        floor = 1.0
        for attack, (member, score) in curves.items():
            fpr, tpr, _ = roc_curve(member, score)
            floor = min(floor, 1.0 / (~np.asarray(member, bool)).sum())
            ax.plot(np.maximum(fpr, floor / 2), np.maximum(tpr, floor / 2), lw=1.5, label=attack)
        grid = np.logspace(np.log10(floor / 2), 0, 50)
        ax.plot(grid, grid, ls=":", c="grey", label="chance")
        ax.set(xscale="log", yscale="log", xlabel="false positive rate", xlim=(floor / 2, 1), ylim=(floor / 2, 1.05),
               title=name)
    axes[0, 0].set_ylabel("true positive rate")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def tpr_by_references(df: pd.DataFrame, title: str = "", chance: float | None = None, col_wrap: int = 4):
    """TPR at one FPR against the number of reference models, one line per attack, a panel per subset and
    configuration (``df``: references, tpr, attack, panel), ``col_wrap`` panels a row; ``chance`` (the FPR,
    in the TPR's unit) is drawn as a dotted line."""
    g = sns.relplot(df, x="references", y="tpr", hue="attack", col="panel", kind="line", marker="o",
                    col_wrap=col_wrap, height=3.0, aspect=1.2, facet_kws={"sharey": False})
    g.set(xscale="log")
    ticks = sorted(df["references"].unique())
    for ax in g.axes.flat:
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        if chance is not None:
            ax.axhline(chance, color="0.4", linestyle=":", linewidth=1)
    g.set_titles("{col_name}")
    g.set_axis_labels("reference models", df["ylabel"].iloc[0] if "ylabel" in df else "TPR")
    g.figure.suptitle(title + (" (dotted: chance)" if chance is not None else ""), y=1.02)
    return g.figure


def butterfly_supports(chain, title: str = ""):
    """The supports of a butterfly factorization's factors, left to right (``models.butterfly.support`` of each
    (a, b, c, d) of ``chain``), and of their product: 002's Figure 3 for a chain of size 16."""
    from .models.butterfly import support
    masks = [support(*f).float() for f in chain]
    product = masks[0]
    for m in masks[1:]:
        product = (product @ m > 0).float()
    panels = [(f"$X^{{({i + 1})}}$: $I_{{{a}}} \\otimes 1_{{{b}\\times{c}}} \\otimes I_{{{d}}}$", m)
              for i, ((a, b, c, d), m) in enumerate(zip(chain, masks))] + [("product", product)]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.6))
    for ax, (name, m) in zip(axes, panels):
        ax.imshow(m.numpy(), cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def frontier(table: pd.DataFrame, curve_names: list[str], title: str = ""):
    """Issue 29's frontier: test accuracy (x) against TPR at low FPR (y, log scale; each subset at the FPR the
    table read it at, 0.1 % where its non-members resolve it), one point per configuration
    with its interval over targets, clean examples and canaries as two panels, the chance line (TPR = FPR) and the
    early-stopping curve (``curve_names``: the undefended budgets no other one dominates, by accuracy) as the
    baseline: a defense helps only where it lies below that curve; dominated budgets are drawn as points.
    ``table``: ``chapters.comparison.attack_table``."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharex=True)
    early = [n for n in table.index if n == "Undefended" or n.startswith("Early stopping")]
    colours = [c for i, c in enumerate(sns.color_palette("tab10")) if i != 7]  # grey is the baseline's
    defenses = [n for n in table.index if n not in early]
    for ax, subset in zip(axes, ("clean", "canaries")):
        col = f"aware, {subset}"
        fpr = table[f"{col}: at FPR (%)"].max() / 100
        floor = fpr / 10
        y = table[f"{col}: TPR (%)"].clip(lower=100 * floor)
        lo = table[f"{col}: low"].clip(lower=100 * floor)
        hi = table[f"{col}: high"].clip(lower=100 * floor)
        curve = table.loc[list(curve_names)]
        ax.plot(curve["test accuracy (%)"], y[curve.index], "-", c="grey", lw=1.5, label="early stopping (baseline)")
        for name in table.index:
            x = table.loc[name, "test accuracy (%)"]
            baseline = name in early
            ax.errorbar(x, y[name], yerr=[[y[name] - lo[name]], [hi[name] - y[name]]], fmt="o" if baseline else "D",
                        ms=6, c="grey" if baseline else colours[defenses.index(name) % len(colours)],
                        label=None if baseline else name)
        ax.axhline(100 * fpr, ls=":", c="k", lw=1, label="chance (TPR = FPR)")
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("test accuracy (%)")
        ax.set_ylabel(f"TPR at {100 * fpr:.3g} % FPR (%)")
        ax.set_title(subset)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def comparison_roc(df: pd.DataFrame, title: str = ""):
    """Issue 29's log-log ROC curves: one line per configuration (each target's TPR averaged at each FPR), the
    defense-aware and unaware attackers side by side (columns), clean examples and canaries as rows; grey lines
    are the undefended model and its early-stopped versions (darker: more epochs), dotted is chance. ``df``:
    ``chapters.comparison.roc_rows`` of one data set."""
    configs = list(dict.fromkeys(df["configuration"]))
    early = [c for c in configs if c == "Undefended" or c.startswith("Early stopping")]
    order = sorted(early, key=lambda c: float("inf") if c == "Undefended" else float(c.split("(")[1].split()[0]))
    palette = {c: str(round(0.8 - 0.65 * i / max(len(order) - 1, 1), 2)) for i, c in enumerate(order)}
    colours = [c for i, c in enumerate(sns.color_palette("tab10")) if i != 7]
    palette.update({c: colours[i % len(colours)] for i, c in enumerate(x for x in configs if x not in early)})
    df = df.assign(TPR=df["TPR"].clip(lower=df["FPR"].min() / 2))  # a TPR of 0 stays on the log axis
    g = sns.relplot(df, x="FPR", y="TPR", hue="configuration", hue_order=configs, palette=palette,
                    col="attacker", col_order=["aware", "unaware"], row="subset", row_order=["clean", "canaries"],
                    kind="line", height=3.6, aspect=1.15, facet_kws={"sharex": False, "sharey": False})
    for (subset, attacker), ax in g.axes_dict.items():
        part = df[(df["subset"] == subset) & (df["attacker"] == attacker)]
        if part.empty:
            continue
        lo = part["FPR"].min()
        grid = np.logspace(np.log10(lo), 0, 20)
        ax.plot(grid, grid, ls=":", c="k", lw=1)
        ax.set(xscale="log", yscale="log", xlim=(lo, 1), ylim=(lo, 1.05))
        for axis in (ax.xaxis, ax.yaxis):  # decades only: minor labels (2×10⁻¹, 3×10⁻¹, ...) overlap
            axis.set_minor_formatter(NullFormatter())
    g.set_titles("{row_name}, {col_name} attacker")
    g.set_axis_labels("false positive rate", "true positive rate")
    g.figure.suptitle(title + " (dotted: chance)", y=1.02)
    return g.figure


def minmax_tuning(df: pd.DataFrame, chance: float, min_excess: float, title: str = ""):
    """Issue 29: each Min-Max candidate's inner gain G during training (one line per λ, a line style per number
    of inner steps, a panel per data set), the chance level (−log 4) dotted and the level the tuning rule asks
    the second half of training to keep on average dashed. ``df``: data set, λ, inner steps, epoch, gain G."""
    from matplotlib.colors import LogNorm
    g = sns.relplot(df, x="epoch", y="gain G", hue="λ", hue_norm=LogNorm(), style="inner steps", col="data set",
                    kind="line", palette="viridis", height=3.4, aspect=1.3, facet_kws={"sharex": False})
    for ax in g.axes.flat:
        ax.axhline(chance, ls=":", c="k", lw=1)
        ax.axhline(chance + min_excess, ls="--", c="grey", lw=1)
    g.set_titles("{col_name}")
    g.figure.suptitle(title + " (dotted: chance; dashed: the rule's threshold)", y=1.03)
    return g.figure
