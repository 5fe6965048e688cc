"""Gonon et al. (002): does sparsity protect a ResNet-20 against a shadow-model membership attack?

A network of 002 (``SparseNet``) is dense, has butterfly (DeBut) convolutions in its last S segments with
L factors, or is the dense network after k rounds of IMP with rewinding. For one ``SparsitySpec`` a target and a
shadow copy are trained alike on their parts of 002's split (``data.shadow_split``) with SGD (momentum 0.9,
lr / 10 at 50% and 75% of training, flip + crop), each kept at its epoch of best validation accuracy; 002's
discriminators (``attacks.gonon``) learn membership on the shadow and attack the target, as do our threshold
attacks, calibrated on the shadow. Trained networks are cached in the weights folder, so IMP's round k starts
from round k − 1's cache, and results in the store (``engine.run``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import attacks
from .attacks.gonon import GononAttack, gonon_attack, gonon_features
from .data import Dataset, default_device, load_dataset, pooled, shadow_split
from .defenses.imp import IMP, nonzero_fraction
from .models import build_model, count_parameters
from .models.butterfly import butterfly_segments
from . import engine
from .weights import cached_phase
from .store import SPARSITY_COMPONENTS, TRAINING_COMPONENTS, spec_key
from .train import KeepBest, Phase, TrainConfig, predict, train

KINDS = ("dense", "butterfly", "imp")


@dataclass(frozen=True)
class SparseNet:
    """One network of 002's Table 1: ``dense``; ``butterfly`` in the last ``segments`` segments with
    ``factors`` factors; ``imp`` after ``prunings`` rounds of IMP."""

    kind: str
    segments: int | None = None
    factors: int | None = None
    prunings: int | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "butterfly") != (self.segments is not None and self.factors is not None):
            raise ValueError("butterfly networks need segments and factors (e.g. segments=2, factors=3), "
                             "and only they take them")
        if (self.kind == "imp") != (self.prunings is not None and self.prunings >= 1):
            raise ValueError("IMP networks need prunings >= 1 (0 prunings is the dense network), and only they "
                             "take prunings")

    @property
    def label(self) -> str:
        if self.kind == "butterfly":
            return f"Butterfly (S={self.segments}, L={self.factors})"
        return f"IMP, k={self.prunings}" if self.kind == "imp" else "Dense"

    def previous(self) -> "SparseNet":
        """The network IMP round k starts from: round k − 1, or the dense network."""
        if self.kind != "imp":
            raise ValueError(f"{self.label} is not an IMP network")
        return SparseNet("imp", prunings=self.prunings - 1) if self.prunings > 1 else SparseNet("dense")


@dataclass(frozen=True)
class SparsitySpec:
    """Everything that determines one result of 002: the network, its training, the run (seed), the split
    (``part`` images per part, ``val`` held out; the split is the same for every run, as in 002), IMP's kept
    fraction per round, the attack, and ``n_attack`` members and as many non-members per network (None:
    every trained-on image)."""

    net: SparseNet
    train: TrainConfig
    run: int = 0
    dataset: str = "cifar10"
    model: str = "resnet20"
    part: int = 15000
    val: int = 1000
    split_seed: int = 0
    keep: float = 0.8
    attack: GononAttack = field(default_factory=GononAttack)
    n_attack: int | None = None


@functools.lru_cache(maxsize=2)
def _pooled(name: str) -> Dataset:
    return pooled(load_dataset(name))


def _split(spec: SparsitySpec):
    ds = _pooled(spec.dataset)
    return ds, shadow_split(len(ds.y_train), spec.part, spec.val, spec.split_seed)


def _view(ds: Dataset, val_idx: np.ndarray) -> Dataset:
    """``ds`` whose test set is the validation images: ``train`` then selects epochs on them."""
    i = torch.as_tensor(val_idx)
    return replace(ds, x_test=ds.x_train[i], y_test=ds.y_train[i])


def _seed(spec: SparsitySpec, role: str) -> int:
    return 1000 * spec.run + 10 * (spec.net.prunings or 0) + (role == "shadow")


def _weights_key(spec: SparsitySpec, role: str) -> str:
    return "sp-" + spec_key({"net": replace(spec, attack=None, n_attack=None), "role": role},
                            TRAINING_COMPONENTS + ("sparsity",))


def _training(spec: SparsitySpec, role: str) -> list[tuple[Phase, str]]:
    """The ``role`` network's training phases with their weights keys: IMP's rounds (``IMP.phases``: the
    dense network, then each pruning) or one phase, each ending at its best-validation epoch."""
    seed = _seed(replace(spec, net=SparseNet("dense")), role)
    if spec.net.kind != "imp":
        return [(Phase("train", spec.train, seed, lambda m: [KeepBest()]), _weights_key(spec, role))]
    nets = [SparseNet("dense")] + [SparseNet("imp", prunings=k) for k in range(1, spec.net.prunings + 1)]
    return list(zip(IMP(spec.net.prunings, spec.keep).phases(spec.train, seed),
                    [_weights_key(replace(spec, net=net), role) for net in nets], strict=True))


def _phases(spec: SparsitySpec) -> list[str]:
    """Weights keys of the target's and the shadow's training phases."""
    return [key for role in ("target", "shadow") for _, key in _training(spec, role)]


def trained_network(spec: SparsitySpec, role: str, device=None, past_corrupt: bool = False
                    ) -> tuple[torch.nn.Module, list, float]:
    """The ``role`` (target or shadow) network of ``spec``, trained (each phase cached) or loaded, at its
    best-validation epoch; with the last phase's per-epoch history and training seconds (IMP: this round's)."""
    ds, split = _split(spec)
    train_idx, val_idx, _ = split.role(role)
    device = torch.device(device or default_device())
    training = _training(spec, role)
    torch.manual_seed(training[0][0].seed)
    model = build_model(spec.model, ds.num_classes, ds.shape)
    if spec.net.kind == "butterfly":
        butterfly_segments(model, spec.net.segments, spec.net.factors)
    model = model.to(device)
    for phase, key in training:
        hooks = phase.hooks(model)

        def fit(ckpt):
            history = train(model, _view(ds, val_idx), train_idx, phase.cfg, phase.seed, hooks=hooks,
                            checkpoint=ckpt, desc=f"{spec.net.label} {role} run {spec.run} {phase.name}")
            hooks[-1].restore(model)
            return history
        history, seconds = cached_phase(key, model, device, fit, phase.name, past_corrupt)
    return model.eval(), history, seconds


def _member_sets(spec: SparsitySpec, role: str, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Members (trained-on images) and as many non-members (from the role's test part) for the attack."""
    ds, split = _split(spec)
    train_idx, _, test_idx = split.role(role)
    n = min(len(train_idx), len(test_idx), spec.n_attack or n_train)
    rng = np.random.default_rng([spec.split_seed, spec.run, role == "shadow"])
    return np.sort(rng.choice(train_idx, n, replace=False)), np.sort(rng.choice(test_idx, n, replace=False))


def _compute(spec: SparsitySpec, device: torch.device, past_corrupt: bool = False) -> tuple[dict, dict]:
    ds, split = _split(spec)
    result, feats, logits = {"label": spec.net.label}, {}, {}
    dense_params = count_parameters(build_model(spec.model, ds.num_classes, ds.shape))
    for role in ("target", "shadow"):
        model, history, seconds = trained_network(spec, role, device, past_corrupt)
        train_idx, val_idx, test_idx = split.role(role)
        acc = {}
        for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
            i = torch.as_tensor(idx)
            acc[name] = float((predict(model, ds.x_train[i], ds).argmax(1).cpu() == ds.y_train[i]).float().mean())
        ins, outs = _member_sets(spec, role, len(train_idx))
        idx = torch.as_tensor(np.r_[ins, outs])
        x, y = ds.x_train[idx], ds.y_train[idx]
        feats[role] = gonon_features(model, x, y, ds, spec.attack, seed=_seed(spec, role))
        logits[role] = (predict(model, x, ds).cpu(), y, np.r_[np.ones(len(ins)), np.zeros(len(outs))].astype(bool))
        result[role] = {"train_acc": acc["train"], "val_acc": acc["val"], "test_acc": acc["test"],
                        "best_epoch": history[-1]["best_epoch"], "history": history, "seconds": seconds,
                        "nonzero_fraction": nonzero_fraction(model, dense_params),
                        "parameters": count_parameters(model)}
    member = {r: logits[r][2] for r in logits}
    gonon = gonon_attack(feats["shadow"], member["shadow"], feats["target"], member["target"], spec.attack,
                         seed=spec.run)
    arrays = {"score_gonon": gonon.pop("scores"), "member": member["target"]}
    result["attacks"] = {"gonon": gonon}
    for kind in attacks.SCORES:
        s_shadow = attacks.score(kind, logits["shadow"][0], logits["shadow"][1])
        s_target = attacks.score(kind, logits["target"][0], logits["target"][1])
        result["attacks"][kind] = attacks.threshold_attack(member["shadow"], s_shadow, member["target"], s_target)
        arrays[f"score_{kind}"] = s_target
    result["test_acc"] = result["target"]["test_acc"]
    result["nonzero_fraction"] = result["target"]["nonzero_fraction"]
    return result, arrays


engine.register(SparsitySpec, "sp-", SPARSITY_COMPONENTS, _compute, _phases)
