"""MCMIA on CIFAR-10 (notebooks/mcmia_cifar10.ipynb): the four regimes of 000/001 on VGG16 and MobileNetV2 (and
ResNet-18), with per-model settings and an ADMM ablation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

from ..report.references import ROW_NAMES

from . import (Results, as_dict, entries, TRAIN_SIZE, ChapterParams, Optimizer, Profile, batch, count, epoch_count, fraction, members_fit,
               number, one_seed, plain, seed_list, width_factor, word)

CifarModel = Literal["vgg16", "mobilenetv2", "resnet18"]  # the rows of 000's and 001's CIFAR-10 tables
N_TRAIN = TRAIN_SIZE["cifar10"]


@dataclass(frozen=True)
class ModelOverrides:
    """Settings of one model that differ from the common ones (each may be absent)."""

    n_target: int | None = count(2, N_TRAIN, "the training images of cifar10", default=None)
    curve_subset: int | None = count(2, 10000, "the test images of cifar10", default=None)
    seeds: list[int] = seed_list(default=None)
    depthwise_rate: float = fraction(default=None)  # pruning rate of depthwise layers
    first_rate: float = fraction(default=None)
    epochs: int = epoch_count(default=None)
    pretrain_epochs: int | None = epoch_count(default=None)
    batch_size: int = batch(default=None)
    lr: float = number(gt=0, default=None)
    admm_epochs: int = epoch_count(default=None)
    retrain_epochs: int = epoch_count(default=None)
    nn_epochs: int = epoch_count(default=None)


@dataclass(frozen=True)
class AdmmAblation:
    """The ADMM ablation: the pruned regime again with other ADMM settings, for some models and seeds (every
    key absent, ``{}``: no ablation; otherwise ``seeds`` is required)."""

    seeds: list[int] = seed_list(default=None)  # of the models' seeds, those ablated
    models: list[CifarModel] = word(default=None, nonempty=True, distinct=True)  # absent: every model
    rho: float = number(gt=0, default=None)
    rho_growth: float = number(min=1, max=10, default=None)
    admm_epochs: int = epoch_count(default=None)
    retrain_epochs: int = epoch_count(default=None)


@dataclass(frozen=True)
class Params(ChapterParams):
    """The CIFAR-10 MCMIA chapter's parameters."""

    profile: Profile = plain()
    dataset: Literal["cifar10"] = word()
    models: list[CifarModel] = word(nonempty=True, distinct=True)
    widths: dict[CifarModel, float] = width_factor()  # width multiplier per model
    compression: dict[CifarModel, float] = number(min=1, max=1000)  # the papers' compression ratio per model
    pmm_models: list[CifarModel] = word(distinct=True)  # models that also run Pruning & Min-Max
    first_rate: float = fraction()  # pruning rate of the first layer
    n_target: int | None = count(2, N_TRAIN, "the training images of cifar10")
    epochs: int = epoch_count()
    pretrain_epochs: int | None = epoch_count()
    batch_size: int = batch()
    lr: float = number(gt=0)
    optimizer: Optimizer = word()
    flip: bool = plain()
    crop_pad: int = count(0, 16)
    admm_epochs: int = epoch_count()
    retrain_epochs: int = epoch_count()
    rho: float = number(gt=0)
    rho_growth: float = number(min=1, max=10)
    minmax_lam: float = number(min=0)
    minmax_steps: int = count(1, 1000)
    minmax_attack_lr: float = number(gt=0)
    nn_epochs: int = epoch_count()
    seeds: list[int] = seed_list()
    overrides: dict[CifarModel, ModelOverrides] = plain()
    admm_ablation: AdmmAblation = plain()  # {}: no ablation
    figure_model: CifarModel = word()
    figure_seed: int = one_seed()

    @classmethod
    def relations(cls, p):
        yield from members_fit("n_target", p.n_target, [p.dataset])
        for name in ("widths", "compression"):
            missing = [m for m in p.models if m not in getattr(p, name)]
            if missing:
                yield name, f"needs a value for every model of models; missing {', '.join(missing)}"
        for name in ("pmm_models", "overrides"):
            stray = [m for m in getattr(p, name) if m not in p.models]
            if stray:
                yield name, f"names {', '.join(stray)}, not among models ({', '.join(p.models)})"
        a = p.admm_ablation
        if a.seeds is None and any(getattr(a, k) is not None for k in ("models", "rho", "rho_growth", "admm_epochs",
                                                                       "retrain_epochs")):
            yield "admm_ablation.seeds", "missing: the seeds to ablate (e.g. [0])"
        stray = [m for m in a.models or () if m not in p.models]
        if stray:
            yield "admm_ablation.models", f"names {', '.join(stray)}, not among models ({', '.join(p.models)})"
        if p.figure_model not in p.models:
            yield "figure_model", f"must be one of models ({', '.join(p.models)}), got {p.figure_model}"


def model_params(p: Params) -> dict:
    """Each network's parameters (``experiments.per_model_params``: the chapter's, then its overrides)."""
    from ..data import load_dataset
    from ..experiments import per_model_params
    q = as_dict(p)
    common = {k: q.get(k) for k in ("dataset", "n_target", "epochs", "pretrain_epochs", "batch_size", "lr",
                                    "optimizer", "flip", "crop_pad", "admm_epochs", "retrain_epochs", "rho",
                                    "rho_growth", "minmax_lam", "minmax_steps", "minmax_attack_lr", "nn_epochs")}
    chapter = {**common, **{k: q.get(k) for k in ("models", "widths", "compression", "first_rate", "seeds",
                                                   "overrides")}}
    ds = load_dataset(p.dataset)
    return {m: per_model_params(chapter, m, ds.num_classes, ds.shape) for m in p.models}


def ablation_specs(p: Params, params: dict) -> list:
    """The ADMM ablation: pruning with the ablation's settings, on its models and seeds."""
    from ..experiments import mcmia_spec
    ablation = as_dict(p).get("admm_ablation") or {}
    alt = {k: v for k, v in ablation.items() if k not in ("seeds", "models")}
    return [mcmia_spec({**params[m], **alt}, "pruning", s) for m in (ablation.get("models") or p.models)
            for s in params[m]["seeds"] if s in ablation["seeds"]] if ablation else []


def stages(p: Params, store=None):
    """One stage: baseline, MCMIA-Pruning and Min-Max per network and seed, Pruning & Min-Max on
    ``pmm_models``, and the ADMM ablation."""
    from ..experiments import METHODS, mcmia_spec
    params = model_params(p)
    yield ([mcmia_spec(params[m], k, s) for m in p.models
            for k in METHODS[:3] + (("pruning+minmax",) if m in p.pmm_models else ()) for s in params[m]["seeds"]]
           + ablation_specs(p, params))


OVERRIDE_TEXT = {"n_target": lambda v: f"{v:,} members", "seeds": lambda v: f"seeds {v}",
                 "curve_subset": lambda v: f"per-epoch curves on {v:,} test and {v:,} evaluation examples",
                 "depthwise_rate": lambda v: f"its depthwise 3×3 layers pruned at {v:.0%} (not the common rate)"}


@dataclass
class CifarResults(Results):
    data_label: str  # the data set's name
    settings: pd.DataFrame
    scaling: str  # the scaled-down recipe, in words (Markdown)
    methods: dict  # model -> method label -> its targets (entries), one per seed
    table_ii: pd.DataFrame  # Tables II / 1 beside ours
    table_iv: pd.DataFrame  # Tables IV / 5 beside ours
    verdicts: pd.DataFrame
    cost_note: str  # test accuracy lost per defense (Markdown)
    attacks: pd.DataFrame
    layers: pd.DataFrame  # Table V from the masks, per model
    table_v: pd.DataFrame  # compression beside Tables V / 4
    table_vi: pd.DataFrame | None  # VGG16's train / test / attack accuracy beside Tables VI / 6 (None: not run)
    gap_note: str  # correlation of the per-class gap and attack accuracy (Markdown)
    js: pd.DataFrame
    admm: pd.DataFrame  # the ADMM residual per model and method (``tables.admm_table``)
    admm_note: str  # whether ADMM converged (Markdown)
    ablation: pd.DataFrame | None  # the earlier ADMM schedule beside this one (None: no ablation)
    figure_specs: dict  # method label -> the figure model's and seed's spec (Figure 3 loads its weights)

    def figure_models(self) -> dict:
        """The figure seed's trained network of each method (from data/weights, trained there when absent)."""
        from ..runner import trained_model
        return {label: trained_model(spec) for label, spec in self.figure_specs.items()}


def results(p: Params, store=None) -> CifarResults:
    import numpy as np

    from .. import claims as claim_lib
    from ..report import references, tables
    from ..report.verdicts import claim_table
    from ..data import load_dataset
    from ..defenses.pruning import prunable
    from ..experiments import LABELS, mcmia_spec
    from ..models import build_model
    from . import read
    e = entries(stages(p, store), store)
    ds = load_dataset(p.dataset)
    params = model_params(p)
    data = ROW_NAMES[p.dataset]
    rows = {m: f"{data}-{ROW_NAMES[m]}" for m in p.models}
    kinds = {m: ["baseline", "pruning", "minmax"] + (["pruning+minmax"] if m in p.pmm_models else []) for m in p.models}
    methods = {m: {LABELS[k]: e([mcmia_spec(params[m], k, s) for s in params[m]["seeds"]]) for k in kinds[m]}
               for m in p.models}
    nn = lambda es: [100 * x.attack("nn")["accuracy"] for x in es]  # noqa: E731
    test = lambda es: [100 * x.test_acc for x in es]  # noqa: E731
    overrides = as_dict(p)["overrides"]

    scaling = (
        f"**Scaling for 2 CPU cores.** Each target trains on {p.n_target or len(ds.y_train):,} of the "
        f"{len(ds.y_train):,} {ds.label} training images "
        f"(members; the attack protocol of 001 App. D splits them in halves D and evaluation members), for {p.epochs} "
        f"epochs (the papers: 300, pruning after 200), with Adam {p.lr:g} (the printed 0.05 does not train; LeNet-5 "
        f"chapter), " + (f"with random flips and {p.crop_pad}-pixel crops. " if p.flip or p.crop_pad else
                         "without augmentation (the papers do not say; without it the scaled networks over-fit within "
                         "the epoch budget, as the papers' baselines do: Table VI). ")
        + "The networks are the papers' architectures with "
        "every layer's width scaled: " + ", ".join(f"{m} × {p.widths[m]:g}" for m in p.models) + ". Pruning runs "
        f"{p.admm_epochs} ADMM epochs (ρ = {p.rho:g}, growing {p.rho_growth:g}× per epoch) and {p.retrain_epochs} "
        "retraining epochs from the baseline. The per-layer rates follow "
        f"001's rule (App. E: first layer {p.first_rate:.0%}, the others one common rate) with the common rate set "
        "so that the compression equals the ratio printed for the model: "
        + ", ".join(f"{m} {p.compression[m]:g}× ({references.source(references.compression_reference(m, p.compression[m]))})"
                    for m in p.models) + ". For VGG16, 001 Table 4 prints 13.84× and 000 Table V 12.80× for the same "
        "model; we follow 001 (its rates come from the same appendix)."
        + "".join(f" {m} differs from these common settings: "
                  + ", ".join(OVERRIDE_TEXT.get(k, lambda v, k=k: f"{k} = {v}")(v) for k, v in o.items()) + "."
                  for m, o in overrides.items()))

    ours = {}
    for m in p.models:
        for label, es in methods[m].items():
            name = "baseline" if label == "Baseline" else label
            ours[(rows[m], f"{name} test accuracy")] = test(es)
            ours[(rows[m], f"{name} attack accuracy")] = nn(es)
    table_ii = tables.reference_table([("000", "II"), ("001", "1")], ours, rows=set(rows.values()))
    table_iv = tables.reference_table([("000", "IV"), ("001", "5")], ours, rows={rows[m] for m in p.pmm_models})

    claims = []
    for m in p.models:
        paper = {label: references.reference(rows[m], f"{label} attack accuracy", table=table)["value"]
                 for label, table in (("MCMIA-Pruning", "II"), ("Min-Max", "II"), ("Pruning & Min-Max", "IV"))
                 if label in methods[m]}
        claims += claim_lib.defense_lowers_attack(
            rows[m], methods[m]["Baseline"], {label: methods[m][label] for label in paper},
            references.reference(rows[m], "baseline attack accuracy", table="II")["value"], paper, ds.num_classes)
    verdicts = claim_table(claims)
    cost = [f"{ROW_NAMES[m]} {label} {np.mean(test(methods[m]['Baseline'])) - np.mean(test(es)):+.2f}"
            for m in p.models for label, es in methods[m].items() if label != "Baseline"]
    cost_note = ("Paired per-seed differences (baseline − defended NN-attack accuracy, points), Holm levels over "
                 "the chapter's claims; rule on the methods page. Test "
                 "accuracy lost (points): " + "; ".join(cost) + ".")
    attacks = pd.concat({(ROW_NAMES[m], label): tables.attack_table(es) for m in p.models for label, es in methods[m].items()},
                        names=["model", "method"])

    layer_rows = []
    for m in p.models:
        rep = methods[m]["MCMIA-Pruning"][0].result["sparsity"]
        w, kept = sum(x["weights"] for x in rep), sum(x["nonzero"] for x in rep)
        full = sum(w_.numel() for _, w_ in prunable(build_model(m, ds.num_classes, ds.shape, 1.0)))
        layer_rows.append({"model": ROW_NAMES[m], "layers": len(rep), "first-layer rate": params[m]["rates"][0],
                           "other layers' rate": max(params[m]["rates"][1:]),
                           "depthwise layers' rate": params[m].get("depthwise_rate") or "common",
                           f"weights (width × {p.widths[m]:g})": w, "after pruning": kept,
                           "compression (×)": round(w / kept, 2), "weights at full width": full})
    table_v = tables.reference_table(
        [("000", "V"), ("001", "4")],
        {(f"CIFAR-{ROW_NAMES[m]}", "reduction ratio"): [x["compression (×)"]] for m, x in zip(p.models, layer_rows)},
        rows={f"CIFAR-{ROW_NAMES[m]}" for m in p.models}, missing="scaled width: table above")

    vgg = methods.get("vgg16", {})
    ours6 = {}
    for label, es in vgg.items():
        ours6[(label, "train accuracy")] = [100 * x.train_acc for x in es]
        ours6[(label, "test accuracy")] = test(es)
        ours6[(label, "attack accuracy")] = nn(es)
    table_vi = tables.reference_table([("000", "VI"), ("001", "6")], ours6) if vgg else None

    gaps = tables.per_class_gap(methods[p.figure_model])
    gap, acc = gaps["train-test accuracy gap (%)"], gaps["NN attack accuracy (%)"]
    corr = np.corrcoef(gap, acc)[0, 1] if gap.std() > 0 and acc.std() > 0 else float("nan")
    gap_note = (f"Across all methods, classes and seeds ({len(gap)} points) the Pearson correlation between "
                f"the per-class gap and the per-class attack accuracy is **{corr:.2f}** (nan: one of them does "
                "not vary); 000 describes the relation as a trend without a number.")

    pruned_labels = ("MCMIA-Pruning", "Pruning & Min-Max")
    admm = pd.concat({ROW_NAMES[m]: tables.admm_table({k: v for k, v in methods[m].items() if k in pruned_labels})
                      for m in p.models}, names=["model"])
    said = []
    for m in p.models:
        res = [[h["admm_residual"] for h in x.history if h.get("phase") == "admm"]
               for x in methods[m]["MCMIA-Pruning"]]
        first, last = np.mean([r[0] for r in res]), np.mean([r[-1] for r in res])
        trend = ("one ADMM epoch only" if len(res[0]) == 1 else "shrinking" if last < first else
                 "growing, so ADMM had not converged when the weights were hard-pruned and the retraining "
                 "starts from a damaged network")
        said.append(f"{ROW_NAMES[m]}: {first:.2f} → {last:.2f}, {trend}")
    admm_note = "Residual over the ADMM phase (mean over seeds): " + "; ".join(said) + "."

    ablation_entries = e(ablation_specs(p, params))
    ablation = None
    a = as_dict(p)["admm_ablation"]
    if a:
        alt = {k: v for k, v in a.items() if k not in ("seeds", "models")}
        abl_rows = []
        for m in a.get("models", p.models):
            for name, pm in (("this chapter", params[m]), ("earlier", {**params[m], **alt})):
                for s in [s for s in params[m]["seeds"] if s in a["seeds"]]:
                    x = e[mcmia_spec(pm, "pruning", s)]
                    res = [h["admm_residual"] for h in x.history if h.get("phase") == "admm"]
                    abl_rows.append({"model": ROW_NAMES[m], "schedule": f"{name}: ρ = {pm['rho']:g} × {pm['rho_growth']:g}, "
                                     f"{pm['admm_epochs']} ADMM epochs", "seed": s, "residual first": res[0],
                                     "residual last": res[-1], "test accuracy": 100 * x.test_acc,
                                     "NN attack accuracy": 100 * x.attack("nn")["accuracy"]})
        ablation = pd.DataFrame(abl_rows).groupby(["model", "schedule"]).agg(
            {"seed": "count", "residual first": "mean", "residual last": "mean", "test accuracy": "mean",
             "NN attack accuracy": "mean"}).rename(columns={"seed": "seeds"}).round(3)

    targets = [x for m in p.models for es in methods[m].values() for x in es]
    figure = [x for es in methods[p.figure_model].values() for x in es]
    return CifarResults(
        {"Tables II, IV, verdicts, attacks, JS, ADMM": targets,
         "Table V (masks)": [methods[m]["MCMIA-Pruning"][0] for m in p.models],
         "Table VI": [x for es in vgg.values() for x in es], "Figures 2-5": figure,
         "ADMM ablation": ablation_entries}, {},
        ds.label, tables.settings_table(as_dict(p), as_dict(read("mcmia_cifar10", "paper"))), scaling, methods,
        table_ii, table_iv, verdicts, cost_note, attacks, pd.DataFrame(layer_rows).set_index("model"), table_v,
        table_vi, gap_note, pd.concat({ROW_NAMES[m]: tables.js_table(methods[m]) for m in p.models}, names=["model"]),
        admm, admm_note, ablation,
        {LABELS[k]: mcmia_spec(params[p.figure_model], k, p.figure_seed) for k in kinds[p.figure_model]})
