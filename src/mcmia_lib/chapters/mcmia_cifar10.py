"""MCMIA on CIFAR-10 (notebooks/mcmia_cifar10.ipynb): the four regimes of 000/001 on VGG16 and MobileNetV2 (and
ResNet-18), with per-model settings and an ADMM ablation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import (as_dict, TRAIN_SIZE, ChapterParams, Optimizer, Profile, batch, count, epoch_count, fraction, members_fit,
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
