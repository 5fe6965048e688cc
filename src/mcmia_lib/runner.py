"""Experiment spec -> trained target -> attacks -> metrics: the main kind of store entry.

``run(spec)`` (``engine.run``, the one compute-and-store path) returns the stored result when the spec and the
code's component versions match an entry, and computes and stores it otherwise. Trained weights are cached
per training phase (``cached_phase``), so specs that share a phase (a pruned target's pretraining is the
baseline) train it once.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import attacks, metrics
from .attacks.nn_attack import NNAttackConfig
from .attacks.tfp_attack import tfp_attack
from . import engine
from .data import load_dataset, membership_split, default_device
from .defenses import defense_hooks
from .weights import cached_phase
from .defenses.dp import DPSGD
from .defenses.minmax import MinMax, MinMaxHook
from .defenses.pruning import ADMMPruning, sparsity_report
from .defenses.regularization import Regularization
from .models import build_model, count_parameters
from .engine import hardware, run  # noqa: F401  (re-exported: the notebooks import them from here)
from .store import RUN_COMPONENTS, TRAINING_COMPONENTS, spec_key
from .train import Hook, Phase, TrainConfig, curve_indices, predict, train


@dataclass(frozen=True)
class ExperimentSpec:
    """Everything that determines a result. ``n_target=None`` trains on the whole training set;
    ``nn_attack=None`` skips the NN attack (threshold attacks always run); ``tfp_attack=True`` adds 004's
    attack (training set vs test set, ``attacks.tfp_attack``). Defenses: ``pruning`` (ADMM,
    starting from the undefended target), ``minmax`` (adversarial regularization; with ``pruning`` it is
    applied during the masked retraining: 000's "Pruning & Min-Max"), ``regularization`` (L2 on the
    prediction layer and/or dropout, 004) and ``dp`` (DP-SGD; alone or with dropout)."""

    dataset: str
    model: str
    train: TrainConfig
    seed: int = 0
    width: float = 1.0
    n_target: int | None = None
    nn_attack: NNAttackConfig | None = field(default_factory=NNAttackConfig)
    pruning: ADMMPruning | None = None
    minmax: MinMax | None = None
    regularization: Regularization | None = None
    dp: DPSGD | None = None
    tfp_attack: bool | None = None

    def __post_init__(self):
        if self.dp is not None and (self.pruning or self.minmax or (self.regularization and
                                                                    self.regularization.l2_last)):
            raise ValueError("DP-SGD combines here only with dropout: its clipping bounds the cross-entropy's "
                             "per-example gradients, not those of pruning, Min-Max or L2 terms")

    def with_seed(self, seed: int) -> "ExperimentSpec":
        return replace(self, seed=seed)


@functools.lru_cache(maxsize=4)
def _dataset(name: str):
    return load_dataset(name, device="cpu")


class LeakageProbe(Hook):
    """Training hook: after each epoch, the loss attack's AUC and advantage on the evaluation set.
    Both are threshold-free, so no calibration data is used; they show leakage growing with training.
    ``subset``: a fixed random subset of that many examples, half members and half non-members (``None``: all)."""

    def __init__(self, ds, split, device, subset: int | None = None):
        self.ds = ds
        half = None if subset is None else subset // 2
        ins = split.eval_in[curve_indices(len(split.eval_in), half).numpy()]
        outs = split.eval_out[curve_indices(len(split.eval_out), half).numpy()]
        self.x = torch.cat([ds.x_train[torch.as_tensor(ins)], ds.x_test[torch.as_tensor(outs)]])
        self.x = self.x.to(device)
        self.y = torch.cat([ds.y_train[torch.as_tensor(ins)], ds.y_test[torch.as_tensor(outs)]])
        self.member = np.r_[np.ones(len(ins)), np.zeros(len(outs))]

    def after_epoch(self, epoch, model, record):
        s = attacks.score("loss", predict(model, self.x, self.ds).cpu(), self.y)
        record["loss_attack_auc"] = float(metrics.roc_auc(self.member, s))
        record["loss_attack_advantage"] = float(metrics.advantage(self.member, s))


def training_key(spec: ExperimentSpec) -> str:
    """Key of the trained target alone: specs differing only in their attacks share the weights."""
    return spec_key(replace(spec, nn_attack=None, tfp_attack=None), TRAINING_COMPONENTS)


def _trained_target(spec: ExperimentSpec, ds, split, device, past_corrupt: bool = False
                    ) -> tuple[torch.nn.Module, list, float]:
    """Train the target with its defenses (each phase resumable and cached) or load it; return (model,
    per-epoch history over all phases, training seconds). A multi-phase defense declares its phases after
    the pretraining (``ADMMPruning.phases``); the weights keys are ``_phases(spec)``."""
    torch.manual_seed(spec.seed)
    reg = spec.regularization
    model = build_model(spec.model, ds.num_classes, ds.shape, spec.width, reg.dropout if reg else None).to(device)
    probe = LeakageProbe(ds, split, device, spec.train.curve_subset)
    desc = f"{spec.model}/{spec.dataset} seed {spec.seed}"

    def minmax_hooks(seed):
        return [] if spec.minmax is None else [MinMaxHook(ds, split.target_train, split.attack_out, spec.minmax,
                                                          spec.train.batch_size, seed)]

    if spec.pruning is None:
        hooks = minmax_hooks(spec.seed) + defense_hooks(reg, spec.dp)
        phases = [Phase("train", spec.train, spec.seed, lambda m: hooks)]
    else:  # pretraining is the undefended target; Min-Max joins the masked retraining
        phases = [Phase("train", spec.train, spec.seed, lambda m: []),
                  *spec.pruning.phases(spec.train, spec.seed, minmax_hooks(spec.seed + 2))]
    history, seconds = [], 0.0
    for phase, key in zip(phases, _phases(spec), strict=True):
        hooks = phase.hooks(model) + [probe]

        def fit(ckpt):
            return train(model, ds, split.target_train, phase.cfg, phase.seed, hooks=hooks, checkpoint=ckpt,
                         desc=f"{desc} {phase.name}")
        h, s = cached_phase(key, model, device, fit, phase.name, past_corrupt)
        history, seconds = history + h, seconds + s
    return model, history, seconds


def data_and_split(spec: ExperimentSpec):
    """The spec's dataset (loaded once per process) and its membership split."""
    ds = _dataset(spec.dataset)
    return ds, membership_split(len(ds.y_train), len(ds.y_test), spec.seed, spec.n_target)


def trained_model(spec: ExperimentSpec, device=None) -> torch.nn.Module:
    """The trained target of ``spec`` (loaded from data/weights, or trained and cached there) on ``device``
    (default: CUDA where present), in eval mode."""
    ds, split = data_and_split(spec)
    return _trained_target(spec, ds, split, torch.device(device or default_device()))[0].eval()


def validation_indices(spec: ExperimentSpec, n: int = 5000) -> np.ndarray:
    """``n`` training-set indices outside the target's members (a fixed draw per split seed): held-out data
    for choosing hyperparameters without looking at the test set or the attack's data."""
    ds, split = data_and_split(spec)
    rest = np.setdiff1d(np.arange(len(ds.y_train)), split.target_train)
    if len(rest) < n:
        raise ValueError(f"only {len(rest)} training images lie outside the {len(split.target_train)} members of "
                         f"{spec.dataset}; lower n (got {n}) or n_target")
    return np.sort(np.random.default_rng([spec.seed, 2]).choice(rest, n, replace=False))


def validation_accuracy(spec: ExperimentSpec, n: int = 5000, device=None) -> float:
    """Accuracy of the trained target of ``spec`` on its ``validation_indices``."""
    ds, _ = data_and_split(spec)
    idx = torch.as_tensor(validation_indices(spec, n))
    pred = predict(trained_model(spec, device), ds.x_train[idx], ds).argmax(1).cpu()
    return float((pred == ds.y_train[idx]).float().mean())


def _compute(spec: ExperimentSpec, device: torch.device, past_corrupt: bool = False) -> tuple[dict, dict]:
    ds, split = data_and_split(spec)
    model, history, t_train = _trained_target(spec, ds, split, device, past_corrupt)
    t0 = time.perf_counter()

    def logits_of(x_all, y_all, idx):
        i = torch.as_tensor(idx, dtype=torch.long)
        return predict(model, x_all[i].to(device), ds, flip_average=spec.train.eval_flip).cpu(), y_all[i]

    parts = {"attack_in": logits_of(ds.x_train, ds.y_train, split.attack_in),
             "attack_out": logits_of(ds.x_test, ds.y_test, split.attack_out),
             "eval_in": logits_of(ds.x_train, ds.y_train, split.eval_in),
             "eval_out": logits_of(ds.x_test, ds.y_test, split.eval_out)}
    train_logits, train_y = logits_of(ds.x_train, ds.y_train, split.target_train)
    test_logits = predict(model, ds.x_test.to(device), ds, flip_average=spec.train.eval_flip).cpu()
    calib_member = np.r_[np.ones(len(split.attack_in)), np.zeros(len(split.attack_out))]
    eval_member = np.r_[np.ones(len(split.eval_in)), np.zeros(len(split.eval_out))]
    cal_logits = torch.cat([parts["attack_in"][0], parts["attack_out"][0]])
    cal_y = torch.cat([parts["attack_in"][1], parts["attack_out"][1]])
    ev_logits = torch.cat([parts["eval_in"][0], parts["eval_out"][0]])
    ev_y = torch.cat([parts["eval_in"][1], parts["eval_out"][1]])
    ce = torch.nn.functional.cross_entropy
    result = {
        "dataset_label": ds.label, "parameters": count_parameters(model),
        "n": {"target_train": len(split.target_train), "attack_in": len(split.attack_in),
              "attack_out": len(split.attack_out), "eval_in": len(split.eval_in), "eval_out": len(split.eval_out)},
        "train_acc": metrics.accuracy(train_y.numpy(), train_logits.numpy()),
        "test_acc": metrics.accuracy(ds.y_test.numpy(), test_logits.numpy()),
        "train_loss": ce(train_logits, train_y).item(), "test_loss": ce(test_logits, ds.y_test).item(),
        "history": history, "attacks": {}, "sparsity": sparsity_report(model)}
    if spec.dp is not None:
        last = history[-1]
        result["dp"] = {"epsilon": last["dp_epsilon"], "delta": spec.dp.delta, "accountant": spec.dp.accountant,
                        "noise_multiplier": last["dp_noise_multiplier"], "sample_rate": last["dp_sample_rate"],
                        "steps": last["dp_steps"]}
    arrays = {"eval_member": eval_member.astype(np.int8), "eval_label": ev_y.numpy().astype(np.int16),
              "eval_pred": ev_logits.argmax(1).numpy().astype(np.int16),
              "eval_prob_true": torch.softmax(ev_logits.double(), 1).gather(1, ev_y[:, None])[:, 0].numpy()
              .astype(np.float32)}
    for kind in attacks.SCORES:
        s_eval = attacks.score(kind, ev_logits, ev_y)
        result["attacks"][kind] = attacks.threshold_attack(calib_member, attacks.score(kind, cal_logits, cal_y),
                                                           eval_member, s_eval)
        arrays[f"score_{kind}"] = s_eval
    if spec.tfp_attack:
        result["attacks"]["tfp"] = tfp_attack(train_logits, train_y, test_logits, ds.y_test, seed=spec.seed)
    if spec.nn_attack is not None:
        nn_out = attacks.train_nn_attack(*parts["attack_in"], *parts["attack_out"], ev_logits, ev_y, eval_member,
                                         spec.nn_attack, seed=spec.seed)
        result["attacks"]["nn"] = nn_out["metrics"]
        arrays["score_nn"] = nn_out["scores"]
    result["provenance"] = {"seconds_train": t_train, "seconds_attacks": time.perf_counter() - t0}
    return result, arrays


def _phases(spec: ExperimentSpec) -> list[str]:
    """Weights keys of the target's training phases (``_trained_target``), in order."""
    if spec.pruning is None:
        return [training_key(spec)]
    return [training_key(replace(spec, pruning=None, minmax=None)),
            training_key(replace(spec, minmax=None)) + "-admm", training_key(spec)]


engine.register(ExperimentSpec, "", RUN_COMPONENTS, _compute, _phases)


@dataclass(frozen=True)
class ValidationSpec:
    """The accuracy of ``target``'s trained model on ``n`` held-out training images (``validation_indices``):
    what a hyperparameter (DP-SGD's clipping norm) is chosen on, stored so that a grid computes it once."""

    target: ExperimentSpec
    n: int = 5000


def _validation(spec: ValidationSpec, device, past_corrupt: bool = False) -> tuple[dict, dict]:
    return {"validation_accuracy": validation_accuracy(spec.target, spec.n, device), "n": spec.n}, {}


engine.register(ValidationSpec, "val-", TRAINING_COMPONENTS, _validation, lambda spec: _phases(spec.target))

