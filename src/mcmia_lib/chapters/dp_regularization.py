"""DP-SGD and regularization (notebooks/dp_regularization.ipynb): 004's seven configurations (baseline, DP-SGD at
each ε, L2, dropout, both) on several data sets, model inversion from each layer, and 000's Table I."""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from ..report.references import ROW_NAMES

from . import (Results, as_dict, entries, TEST_SIZE, TRAIN_SIZE, ChapterParams, Profile, batch, count, epoch_count, fraction, members_fit,
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
    lenet_seeds: list[int] | None = seed_list(default=None)  # the MNIST-LeNet-5 row's, where they differ from seeds


def table_i_seeds(t: dict, row: str) -> list[int]:
    """The seeds of Table I's ``row``: ``lenet_seeds`` for MNIST-LeNet-5 where given (five where they are cheap,
    issue 28), else ``seeds``."""
    return (t.get("lenet_seeds") or t["seeds"]) if row == "MNIST-LeNet-5" else t["seeds"]


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
    table_i = [s for row, (dp_p, mcmia_p) in rows.items() for seed in table_i_seeds(t, row)
               for s in (dp_column_spec(dp_p, seed), mcmia_spec(mcmia_p, "pruning", seed))]
    yield runs + table_i + inversions


@dataclass
class DPResults(Results):
    data_labels: list  # the data sets' names
    settings: pd.DataFrame
    scaling: str  # the scaled-down recipe (Markdown)
    clip_choice: pd.DataFrame  # validation accuracy per (data set, ε) and candidate C, and the chosen C
    configs: list  # 004's configurations
    runs: dict  # data set -> configuration -> its targets (entries), one per seed
    dips_note: str  # how many runs dipped late (Markdown)
    dips: pd.DataFrame | None  # those runs (None: none)
    table1: pd.DataFrame  # 004's Table 1 beside ours
    table2: pd.DataFrame  # 004's Table 2 beside ours
    time_ratios: pd.DataFrame  # DP / baseline time, ours and 004's
    bench: dict  # benchmarks/dp_overhead.py's measurement
    paper_dp: tuple  # 004's lowest and highest DP / baseline time
    bench_note: str  # the benchmark in words (Markdown)
    accounting: pd.DataFrame  # the ε each DP-SGD target reached
    table3: pd.DataFrame  # 004's Table 3 beside ours
    leak_note: str  # how much the undefended targets leak (Markdown)
    attack_tables: dict  # metric -> our common attacks per data set and configuration
    changes: pd.DataFrame  # changes against the undefended target, averaged over data sets
    inversion_mse: pd.DataFrame  # one row per decoder
    inversion_runs: dict  # data set -> configuration -> layer -> decoder entry
    table4: pd.DataFrame  # 004's Table 4 beside ours
    inversion_note: str  # decoders against the mean image (Markdown)
    inversion_absolute: pd.DataFrame  # test MSE per data set, layer and configuration
    tradeoff: pd.DataFrame  # Figure 6's points
    verdicts: pd.DataFrame  # 004's claims decided
    table_i: pd.DataFrame  # 000's Table I beside ours
    table_i_verdicts: pd.DataFrame
    table_i_note: str  # ε reached and accuracy differences (Markdown)


def results(p: Params, store=None) -> DPResults:
    import numpy as np

    from .. import claims as claim_lib
    from ..report import references, tables
    from ..report.verdicts import claim_table
    from ..data import load_dataset
    from ..experiments import (choose_clip, clip_candidates, dp_column_spec, lomurno_configs, lomurno_spec,
                               mcmia_spec, table_i_rows)
    from ..inversion import InversionSpec
    from . import read
    q = as_dict(p)
    e = entries(stages(p, store), store)
    configs = lomurno_configs(p.epsilons)
    data = {d: load_dataset(d) for d in p.datasets}
    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    scaling = (
        f"**Scaling for 2 CPU cores.** Each target trains on {p.n_target:,} training images (004: the whole training "
        f"set) for {p.epochs} epochs (004: the baseline's best epoch count, not printed), at width × {p.width:g} of our "
        f"version of 004's CNN (three 3×3 conv + max-pool blocks with 32/64/128 channels, a 128-unit dense layer; "
        f"004 prints no sizes), SGD lr {p.lr:g}, batch {p.batch_size} (Poisson-sampled with this expected size under "
        f"DP-SGD), {len(p.seeds)} seed(s). DP-SGD clips per-example gradients at the norm C chosen below (004 does "
        f"not print C) and Opacus chooses the noise so that its RDP accountant reaches the target ε at δ = {p.delta:g} "
        f"after the last epoch. Model inversion: seed {p.inversion_seed}, decoders trained up to {p.inversion_epochs} "
        f"epochs (004: 20) on a random draw of {p.inversion_n_train:,} member images, keeping the epoch of lowest MSE "
        f"on {p.inversion_n_val:,} other members (stopping after 3 epochs without improvement), MSE on "
        f"{p.inversion_n_test:,} random test images, from the layers "
        + ", ".join(p.inversion_layers) + "."
        + ("" if len(p.inversion_layers) == 8 else
           " 004 inverts all eight layers; the other layers' decoders, re-run with the random member draw and the "
           "validation-chosen epoch, are not all in the store yet, so this execution inverts only these (Table 4's "
           "other rows say so)."))

    clip, rows, candidates = {}, [], []
    for d in p.datasets:
        clip[d], tried = choose_clip({**q, "dataset": d}, store=store)
        candidates += e(list(clip_candidates({**q, "dataset": d}).values()))
        rows += [{"dataset": ROW_NAMES[d], **r} for r in tried]
    choice = pd.DataFrame(rows).pivot_table(index=["dataset", "epsilon"], columns="C", values="validation accuracy")
    choice.columns = [f"C = {c:g}" for c in choice.columns]
    choice["chosen C"] = [clip[d][eps] for d in p.datasets for eps in sorted(p.epsilons)]

    spec = lambda d, c, s: lomurno_spec({**q, "dataset": d, "max_grad_norm": clip[d]}, c, s)  # noqa: E731
    runs = {d: {c: e([spec(d, c, s) for s in p.seeds]) for c in configs} for d in p.datasets}
    targets = [x for d in p.datasets for es in runs[d].values() for x in es]

    dips = tables.late_dips({f"{ROW_NAMES[d]} {c}": runs[d][c] for d in p.datasets for c in configs})
    dips_note = (f"Runs whose test accuracy fell more than 20 points below their best in the second half of "
                 f"training: {len(dips)}." + ("" if dips.empty else " They are in the tables with their last-epoch "
                                                 "numbers (004 trains a fixed number of epochs, and so do we):"))

    ours = {}
    for d in p.datasets:
        for c in configs:
            es = runs[d][c]
            ours[(ROW_NAMES[d], f"{c} test accuracy")] = [x.test_acc for x in es]
            ours[(ROW_NAMES[d], f"{c} MIA AUC")] = [x.attack("tfp")["auc"] for x in es]
            ours[(ROW_NAMES[d], f"{c} training seconds")] = [sum(h["step_seconds"] for h in x.history) for x in es]
    ratios = []
    for d in p.datasets:
        base = mean(ours[(ROW_NAMES[d], "Baseline training seconds")])
        for c in configs[1:]:
            ref = references.reference(ROW_NAMES[d], f"{c} training seconds", name="lomurno")["value"]
            ref_base = references.reference(ROW_NAMES[d], "Baseline training seconds", name="lomurno")["value"]
            ratios.append({"dataset": ROW_NAMES[d], "configuration": c,
                           "ours: time / baseline": mean(ours[(ROW_NAMES[d], f"{c} training seconds")]) / base,
                           "004: time / baseline": ref / ref_base})

    paper_dp = references.lomurno_dp_slowdown()  # 004 Table 2: lowest and highest DP / baseline time
    bench = references.load_benchmark("dp_overhead")
    bench_note = (
        f"Measured {bench['started']} with torch {bench['torch']} and Opacus {bench['opacus']}, {bench['threads']} "
        f"thread, {bench['examples']:,} examples per epoch, batch {bench['batch']}, {bench['rounds']} rounds; load "
        f"average {bench['load_average_before']:.2f} on {bench['cpus']} cores when it started. Median ratios: "
        + "; ".join(f"{c} {np.median(r):.2f}×" for c, r in bench["cases"].items())
        + f". 004's DP / baseline times: {paper_dp[0]:.0f}–{paper_dp[1]:.0f}×.")
    accounting = pd.DataFrame([{"dataset": ROW_NAMES[d], "configuration": c, "seed": x.spec["seed"], **x.result["dp"]}
                               for d in p.datasets for c in configs for x in runs[d][c] if "dp" in x.result]
                              ).set_index(["dataset", "configuration", "seed"])

    leak_note = (
        "How much our undefended targets leak, beside 004 (a defense can only remove leakage that is there; where "
        "the baseline's AUC is near 0.5 the changes in this table are small by construction): "
        + "; ".join(f"{ROW_NAMES[d]}: train − test accuracy "
                    f"{100 * mean([x.result['train_acc'] - x.result['test_acc'] for x in runs[d]['Baseline']]):.1f} "
                    f"points, AUC {mean(ours[(ROW_NAMES[d], 'Baseline MIA AUC')]):.3f} "
                    f"(004: {references.reference(ROW_NAMES[d], 'Baseline MIA AUC', name='lomurno')['value']:.3f})"
                    for d in p.datasets) + ".")
    common = [a for a in runs[p.datasets[0]]["Baseline"][0].result["attacks"] if a != "tfp"]
    attacks = pd.concat({(ROW_NAMES[d], c): tables.attack_table(runs[d][c], common) for d in p.datasets for c in configs},
                        names=["dataset", "configuration"])
    attack_tables = {metric: attacks[metric].unstack("attack").reindex(attacks.index.droplevel("attack").unique())
                     for metric in ("AUC", "TPR @ 1% FPR", "TPR @ 0.1% FPR")}

    def change(d, c, col):
        b = mean(ours[(ROW_NAMES[d], f"Baseline {col}")])
        return 100 * (mean(ours[(ROW_NAMES[d], f"{c} {col}")]) - b) / b

    lref = lambda r, col: references.reference(r, col, name="lomurno")["value"]  # noqa: E731
    avg = lambda f: float(np.mean([f(d) for d in p.datasets]))  # noqa: E731  (004 averages over its datasets)
    changes = pd.DataFrame([{
        "configuration": c,
        "AUC change, 004 (points)": avg(lambda d: 100 * (lref(ROW_NAMES[d], f"{c} MIA AUC") - lref(ROW_NAMES[d], "Baseline MIA AUC"))),
        "AUC change, ours (points)": avg(lambda d: 100 * (mean(ours[(ROW_NAMES[d], f"{c} MIA AUC")])
                                                          - mean(ours[(ROW_NAMES[d], "Baseline MIA AUC")]))),
        "AUC change, 004 (%)": avg(lambda d: 100 * (lref(ROW_NAMES[d], f"{c} MIA AUC") / lref(ROW_NAMES[d], "Baseline MIA AUC") - 1)),
        "AUC change, ours (%)": avg(lambda d: change(d, c, "MIA AUC")),
        "accuracy change, 004 (points)": avg(lambda d: 100 * (lref(ROW_NAMES[d], f"{c} test accuracy")
                                                              - lref(ROW_NAMES[d], "Baseline test accuracy"))),
        "accuracy change, ours (points)": avg(lambda d: 100 * (mean(ours[(ROW_NAMES[d], f"{c} test accuracy")])
                                                               - mean(ours[(ROW_NAMES[d], "Baseline test accuracy")])))}
        for c in configs[1:]]).set_index("configuration").round(2)

    inv = {d: {c: {layer: e[InversionSpec(spec(d, c, p.inversion_seed), layer, epochs=p.inversion_epochs,
                                          n_train=p.inversion_n_train, n_val=p.inversion_n_val,
                                          n_test=p.inversion_n_test)]
                   for layer in p.inversion_layers} for c in configs} for d in p.datasets}
    mse = pd.DataFrame([{"dataset": ROW_NAMES[d], "configuration": c, "layer": layer, "test MSE": x.result["test_mse"],
                         "mean-image MSE": x.result["mean_image_mse"], "best epoch": x.result["best_epoch"],
                         "epochs run": x.result["epochs_run"], "seconds": x.seconds}
                        for d in p.datasets for c in configs for layer, x in inv[d][c].items()])
    base = mse[mse.configuration == "Baseline"].set_index(["dataset", "layer"])["test MSE"]
    mse["change (%)"] = 100 * (mse["test MSE"].values / base.loc[list(zip(mse.dataset, mse.layer))].values - 1)
    table4 = mse[mse.configuration != "Baseline"].groupby(["layer", "configuration"], sort=False)["change (%)"].mean()
    ours4 = {(layer, f"{c} inversion MSE change %"): [v] for (layer, c), v in table4.items()}
    beaten = mse["test MSE"] < mse["mean-image MSE"]
    at_cap = (mse["best epoch"] == p.inversion_epochs).sum()
    inversion_note = (
        f"Every cell beside the mean image: {int(beaten.sum())} of {len(mse)} decoders reconstruct the test images "
        "better than predicting the mean training image (the table below; a decoder that does not has learnt nothing "
        f"from its layer). {int(at_cap)} of {len(mse)} reached their lowest validation MSE at the last allowed epoch "
        f"({p.inversion_epochs}): they were still improving at 004's cap. The decoders took "
        f"{mse['seconds'].sum() / 60:.0f} core-minutes.")
    absolute = mse.pivot_table(index=["dataset", "layer"], columns="configuration", values="test MSE", sort=False)
    absolute["mean image"] = mse.groupby(["dataset", "layer"], sort=False)["mean-image MSE"].first()

    last = p.inversion_layers[-1]
    tradeoff = pd.DataFrame([{
        "configuration": c, "accuracy": np.mean([mean(ours[(ROW_NAMES[d], f"{c} test accuracy")]) for d in p.datasets]),
        "MSE change (%)": mse[(mse.configuration == c) & (mse.layer == last)]["change (%)"].mean(),
        "AUC change (%)": np.mean([change(d, c, "MIA AUC") for d in p.datasets]),
        "time ratio": np.mean([change(d, c, "training seconds") / 100 + 1 for d in p.datasets])} for c in configs])

    paper_mse = lambda c: references.reference(last, f"{c} inversion MSE change %", name="lomurno")["value"]  # noqa: E731
    medians = [np.median(r) for r in bench["cases"].values()]
    claims = claim_lib.lomurno_claims(runs, p.datasets, ROW_NAMES, configs, lref, (min(medians), max(medians)), paper_dp)
    claims += claim_lib.inversion_claims({c: table4[(last, c)] for c in configs[1:]},
                                         {c: paper_mse(c) for c in configs[1:]}, last)
    t = q["table_i"]
    t1 = {row: {"DP": e([dp_column_spec(dp_p, s) for s in table_i_seeds(t, row)]),
                "MCMIA-Pruning": e([mcmia_spec(mcmia_p, "pruning", s) for s in table_i_seeds(t, row)])}
          for row, (dp_p, mcmia_p) in table_i_rows(t, as_dict(read("mcmia_lenet5", p.profile)),
                                                   as_dict(read("mcmia_cifar10", p.profile)), clip, p.delta).items()}
    ours1 = {(row, f"{col} {what}"): [100 * (x.test_acc if what == "test accuracy" else
                                            x.attack("nn")["accuracy"]) for x in es]
             for row, cols in t1.items() for col, es in cols.items() for what in ("test accuracy", "attack accuracy")}
    ref1 = lambda row, col: references.reference(row, col, table="I")["value"]  # noqa: E731
    t1_claims = [claim_lib.leaks_less_than(row, cols["DP"], cols["MCMIA-Pruning"], ref1(row, "DP attack accuracy"),
                                           ref1(row, "MCMIA-Pruning attack accuracy"), ("DP-SGD", "MCMIA-Pruning"))
                 for row, cols in t1.items()]
    family = claim_table(claims + t1_claims)  # the chapter's claims, 004's and 000's Table I, are one family
    verdicts, t1_verdicts = family.iloc[:len(claims)], family.iloc[len(claims):]
    t1_note = ("ε reached by the DP-SGD targets: " + "; ".join(
        f"{row} {np.mean([x.result['dp']['epsilon'] for x in cols['DP']]):.2f}" for row, cols in t1.items())
        + ". Test accuracy, MCMIA-Pruning − DP-SGD (points), ours vs 000: " + "; ".join(
        f"{row} {np.mean(ours1[(row, 'MCMIA-Pruning test accuracy')]) - np.mean(ours1[(row, 'DP test accuracy')]):+.2f} "
        f"vs {ref1(row, 'MCMIA-Pruning test accuracy') - ref1(row, 'DP test accuracy'):+.2f}" for row in t1) + ".")
    table_i_entries = [x for cols in t1.values() for es in cols.values() for x in es]
    return DPResults(
        {"clipping norm": candidates, "Tables 1-3, curves, accounting, attacks, verdicts": targets,
         "Table 4, Figures 4-6 (decoders)": [x for d in inv.values() for c in d.values() for x in c.values()],
         "000's Table I": table_i_entries}, {},
        [ds.label for ds in data.values()], tables.settings_table(q, as_dict(read("dp_regularization", "paper"))),
        scaling, choice.round(4), configs, runs, dips_note, None if dips.empty else dips.round(1),
        tables.reference_table([("004", "1")], ours, digits=3, name="lomurno"),
        tables.reference_table([("004", "2")], ours, digits=1, name="lomurno"),
        pd.DataFrame(ratios).set_index(["dataset", "configuration"]).round(2), bench, paper_dp, bench_note,
        accounting, tables.reference_table([("004", "3")], ours, digits=3, name="lomurno"), leak_note,
        attack_tables, changes, mse, inv,
        tables.reference_table([("004", "4")], ours4, digits=1, name="lomurno",
                               missing="layer not inverted at this profile"),
        inversion_note, absolute.round(4), tradeoff, verdicts, tables.reference_table([("000", "I")], ours1),
        t1_verdicts, t1_note)
