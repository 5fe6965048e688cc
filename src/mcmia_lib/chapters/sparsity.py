"""Sparsity (notebooks/sparsity.ipynb): 002's dense, butterfly and IMP-pruned ResNet-20 networks and their
privacy-accuracy trade-off against 002's discriminators."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import (Results, as_dict, entries, TEST_SIZE, TRAIN_SIZE, ChapterParams, Dataset, Profile, batch, count, epoch_count, fraction, number,
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


@dataclass
class SparsityResults(Results):
    data_note: str  # the data set and its size (Markdown)
    settings: pd.DataFrame
    scaling: str  # the scaled-down recipe (Markdown)
    nets: dict  # network label -> its runs (entries)
    table1: pd.DataFrame  # 002's Table 1 beside ours
    figure3: tuple  # the butterfly chain of a 16 x 16 matrix in 4 factors, (a, b, c, d) each: 002's Figure 3
    fig1: pd.DataFrame  # Figure 1's points: accuracy and defense per network (mean ± std)
    abs_fit: tuple | None  # slope of the in-range networks' line (D points per accuracy point) and its interval
    paper_abs: float  # 002's slope
    in_range: tuple  # 002's range of nonzero % (low, high)
    points: pd.DataFrame  # in-range runs: accuracy, defense, relative loss and gain
    ratio_slope: float | None  # the relative gain / relative loss ratio, fitted (None: too few runs)
    paper_ratio: float  # 002's 3.6
    verdicts: pd.DataFrame | None  # the ratio's claims decided (None: too few runs)
    ratio_notes: list  # what the ratio's section says (Markdown paragraphs)
    untested: str | None  # why the claim is not tested at this profile (None: it is)
    significance: pd.DataFrame  # 002's rule (mean ± std disjoint from the dense network's) on ours
    gap: pd.DataFrame  # per run: family, nonzero %, accuracies, gap, defense
    gap_note: str | None  # Pearson's r of gap and defense (Markdown; None: too few runs)
    gap_means: pd.DataFrame  # means per family
    fpr_note: str | None  # why TPR at 0.1% FPR is empty (Markdown; None: it is measured)
    attack_auc: pd.DataFrame  # AUC of each attack per network
    attacks: pd.DataFrame  # every attack metric per network
    cost_note: str  # core-hours (Markdown)
    runs_table: pd.DataFrame  # each run's store key, torch and device


def results(p: Params, store=None) -> SparsityResults:
    import numpy as np
    from scipy.stats import pearsonr

    from .. import claims as claim_lib, metrics
    from ..report import references, tables
    from ..report.verdicts import claim_table, paired_interval, ratio_runs, relative_change
    from ..data import load_dataset
    from ..experiments import gonon_nets, gonon_spec
    from ..models.butterfly import debut_chain
    from . import read
    q = as_dict(p)
    e = entries(stages(p, store), store)
    ds = load_dataset(p.dataset)
    imp = q["imp"]
    data_note = (f"data: {ds.label}, training and test images pooled ({len(ds.y_train) + len(ds.y_test):,})")
    scaling = (
        f"**Scaling for 2 CPU cores.** Each of the four parts holds {p.part:,} images (002: 15,000), {p.val:,} of each "
        f"training part held out for validation, so every network trains on {p.part - p.val:,} images; "
        f"{p.epochs} epochs (002: 300) with the learning rate divided by 10 after {p.epochs // 2} and "
        f"{3 * p.epochs // 4}; IMP for {max(imp['prunings'])} prunings (002: 24), each retraining as long as the first "
        f"training; {len(p.runs)} run(s) (002: 3). Learning rates and weight decays are 002's Table 1, tuned there for "
        "300 epochs on 14,000 images: not re-tuned here.")
    nets = gonon_nets(q)
    runs = {net.label: e([gonon_spec(q, net, r) for r in p.runs]) for net in nets}
    family = {net.label: {"dense": "Dense", "imp": "IMP", "butterfly": "Butterfly"}[net.kind] for net in nets}
    ms = metrics.mean_std

    def col(label, f):
        return [f(x.result) for x in runs[label]]

    rows = []
    for net in nets:
        lab, e0 = net.label, runs[net.label][0]
        ref = "IMP" if net.kind == "imp" else lab
        nz_paper = (references.reference(ref, "% of nonzero params", name="gonon")["value"] if net.kind != "imp"
                    else round(100 * imp["keep"] ** net.prunings, 1))
        acc, acc_sd = ms(col(lab, lambda r: 100 * r["target"]["test_acc"]))
        sh, sh_sd = ms(col(lab, lambda r: 100 * r["shadow"]["test_acc"]))
        tr, _ = ms(col(lab, lambda r: 100 * r["target"]["train_acc"]))
        rows.append({"network": lab, "% nonzero, 002": nz_paper,
                     "% nonzero, ours": 100 * e0.result["nonzero_fraction"],
                     "lr": f'{e0.spec["train"]["lr"]:g}', "weight decay": f'{e0.spec["train"]["weight_decay"]:g}',
                     "train acc. (target)": tr, "test acc. (target)": f"{acc:.2f} ± {acc_sd:.2f}",
                     "test acc. (shadow)": f"{sh:.2f} ± {sh_sd:.2f}",
                     "best epoch": np.mean(col(lab, lambda r: r["target"]["best_epoch"])),
                     "002 test acc.": references.reference("Dense", "test accuracy", name="gonon")["value"]
                     if net.kind == "dense" else ""})
    table1 = pd.DataFrame(rows).set_index("network").round(2)
    figure3 = debut_chain(16, 16, 4)  # the library's own chain: 002's supports (tests/test_butterfly.py)

    fig_rows = []
    for net in nets:
        lab = net.label
        a, a_sd = ms(col(lab, lambda r: 100 * r["target"]["test_acc"]))
        d, d_sd = ms(col(lab, lambda r: r["attacks"]["gonon"]["defense"]))
        fig_rows.append({"family": family[lab], "label": lab, "nonzero %": 100 * runs[lab][0].result["nonzero_fraction"],
                         "accuracy": a, "accuracy std": a_sd, "defense": d, "defense std": d_sd,
                         "attack accuracy A": 100 - d / 2,
                         "defense, oracle discriminator": np.mean(col(lab, lambda r: r["attacks"]["gonon"]["oracle"]["defense"]))})
    fig1 = pd.DataFrame(fig_rows)
    dense_row = fig1[fig1.family == "Dense"].iloc[0]
    lo = references.reference("Sparse", "nonzero % range, low", name="gonon")["value"]
    hi = references.reference("Sparse", "nonzero % range, high", name="gonon")["value"]
    in_range = fig1[(fig1["nonzero %"] >= lo - 0.05) & (fig1["nonzero %"] <= hi + 0.05)]
    dense = {x.spec["run"]: x for x in runs[dense_row["label"]]}
    pts = pd.DataFrame([{"label": lab, "run": x.spec["run"], "accuracy": 100 * x.result["target"]["test_acc"],
                         "defense": x.attack("gonon")["defense"],
                         "dense accuracy": 100 * dense[x.spec["run"]].result["target"]["test_acc"],
                         "dense defense": dense[x.spec["run"]].attack("gonon")["defense"]}
                        for lab in in_range["label"] for x in runs[lab]])
    abs_fit = metrics.line_slope(pts["accuracy"], pts["defense"]) if len(pts) > 2 and pts["accuracy"].std() > 0 else None
    paper_abs = references.reference("Sparse", "slope of the line (defense vs accuracy)", name="gonon")["value"]

    if len(pts):  # each run against its own dense network, as the claim is decided (``verdicts.ratio_runs``)
        pts["relative accuracy loss"], pts["relative defense gain"] = relative_change(
            pts["dense accuracy"], pts["dense defense"], pts["accuracy"], pts["defense"])
    paper_rel = references.reference("Sparse, 3.4-17.3% nonzero", "relative defense gain / relative accuracy loss",
                                 name="gonon")["value"]
    labels = list(in_range["label"])
    verdicts, slope, notes, untested = None, None, [], None
    series = {"pooled": ratio_runs(claim_lib.sparsity_runs(runs, labels), paper_rel)} if labels else {}
    if len(p.runs) >= 2 and labels and np.abs(series["pooled"]["points"][:, 0]).sum() > 0:
        series.update({fam: ratio_runs(claim_lib.sparsity_runs(runs, [x for x in labels if family[x] == fam]),
                                       paper_rel)
                       for fam in ("Butterfly", "IMP") if any(family[x] == fam for x in labels)})
        verdicts = claim_table(claim_lib.sparsity_claims(series))
        slope = series["pooled"]["slope"]
        gain = {name: paired_interval(100 * np.asarray(s["gains"]), 0.95) for name, s in series.items()}
        notes.append(f"Mean relative defense gain of the in-range networks, each run against its own dense network "
                     f"(95% t-interval over {len(p.runs)} runs): " + "; ".join(
                         f"{name} {m:+.1f}% [{lo:+.1f}, {hi:+.1f}]%" for name, (m, lo, hi) in gain.items()) + ".")
        if abs_fit:
            holds = "holds" if abs_fit[1] <= paper_abs <= abs_fit[2] else "excludes"
            notes.append(
                f"The line of 002's Figure 1 through the same runs has a slope of {abs_fit[0]:.2f} D points per accuracy "
                f"point, 95% interval [{abs_fit[1]:.2f}, {abs_fit[2]:.2f}], which {holds} 002's {paper_abs:g}. A line "
                "with an intercept only says how the in-range networks trade accuracy for defense among themselves; "
                "whether they gain on the dense network is the ratio's question.")
    else:
        notes.append(f"{len(pts)} run(s) of {len(p.runs)} run(s) of this profile lie in 002's {lo}–{hi}% range: too "
                     "few runs for an interval over runs, so the claim is not tested here.")
        untested = f"{len(p.runs)} run(s) and {len(pts)} in-range point(s): too few runs for an interval over runs."

    def interval(r):
        return r["defense"] - r["defense std"], r["defense"] + r["defense std"]

    dl, dh = interval(dense_row)
    sig = []
    for _, r in fig1[fig1.family != "Dense"].iterrows():
        lo_, hi_ = interval(r)
        sig.append({"network": r["label"], "% nonzero": r["nonzero %"], "D": r["defense"], "D std": r["defense std"],
                    "vs dense": "undecided (one run)" if len(p.runs) < 2 else
                    "gain" if lo_ > dh else "loss" if hi_ < dl else "no significant change"})

    gap = pd.DataFrame([{"family": family[lab], "nonzero %": 100 * x.result["nonzero_fraction"],
                         "train acc.": 100 * x.result["target"]["train_acc"],
                         "test acc.": 100 * x.result["target"]["test_acc"],
                         "gap": 100 * (x.result["target"]["train_acc"] - x.result["target"]["test_acc"]),
                         "defense": x.attack("gonon")["defense"]} for lab, xs in runs.items() for x in xs])
    gap_note = None
    if len(gap) > 2 and gap["gap"].std() > 0 and gap["defense"].std() > 0:
        r_, p_r = pearsonr(gap["gap"], gap["defense"])
        gap_note = (f"Over all {len(gap)} runs, Pearson's r between the gap and D is **{r_:.2f}** (p = {p_r:.2g}). "
                    "Means per family (accuracies and gap in %):")
    gap_means = gap.groupby("family", sort=False)[["train acc.", "test acc.", "gap", "defense"]].mean().round(1)

    common = tables.merged_attacks(["loss", "confidence", "entropy", "modified_entropy"])
    n_non = min(int((~x.arrays["member"]).sum()) for xs in runs.values() for x in xs)  # smallest attack set
    fpr_note = (f"Each attack set has {n_non:,} non-members, so its smallest non-zero FPR is "
                f"{100 * metrics.min_resolvable_fpr(n_non):.2f}%: TPR at 0.1% FPR cannot be measured at this "
                "profile and is left empty (NaN).") if metrics.min_resolvable_fpr(n_non) > 0.001 else None
    attack_rows = []
    for net in nets:
        for kind in ["gonon"] + common:
            vals = col(net.label, lambda r: r["attacks"][kind])
            attack_rows.append({"network": net.label, "attack": tables.ATTACK_NAMES.get(kind, "002 discriminator"),
                                "AUC": np.mean([v["auc"] for v in vals]), "accuracy": np.mean([v["accuracy"] for v in vals]),
                                "TPR@1%FPR": np.mean([v["tpr@0.01"] for v in vals]),
                                "TPR@0.1%FPR": np.mean([v["tpr@0.001"] for v in vals])})
    attacks = pd.DataFrame(attack_rows)

    train = [x.result[r]["seconds"] for xs in runs.values() for x in xs for r in ("target", "shadow")]
    attack = [x.seconds for xs in runs.values() for x in xs]
    cost_note = (
        f"This chapter's {len(attack)} results cost {(sum(train) + sum(attack)) / 3600:.2f} core-hours: "
        f"{sum(train) / 3600:.2f} to train the targets and shadows (stored with their weights; an IMP network counts "
        f"its own round) and {sum(attack) / 3600:.2f} for the features and attacks of the current results (one thread "
        "per job). A network whose training was stopped and resumed counts only the time after the resume.")
    runs_table = pd.DataFrame([{"network": x.result["label"], "run": x.spec["run"], "key": x.key,
                                "torch": x.result["provenance"]["hardware"]["torch"],
                                "device": x.result["provenance"]["hardware"]["device"]}
                               for xs in runs.values() for x in xs]).set_index(["network", "run"])
    everything = [x for xs in runs.values() for x in xs]
    in_range_runs = [x for lab in labels for x in runs[lab]]
    return SparsityResults(
        {"Table 1, Figure 1, significance, gap, attacks": everything,
         "the 3.6·p% claim (in-range networks and the dense one)": runs[dense_row["label"]] + in_range_runs},
        {}, data_note, tables.settings_table(q, as_dict(read("sparsity", "paper"))), scaling, runs, table1, figure3, fig1,
        abs_fit, paper_abs, (lo, hi), pts, slope, paper_rel, verdicts, notes, untested,
        pd.DataFrame(sig).set_index("network").round(2), gap, gap_note, gap_means, fpr_note,
        attacks.pivot_table(index="network", columns="attack", values="AUC", sort=False).round(3),
        attacks.set_index(["network", "attack"]).round(4), cost_note, runs_table)
