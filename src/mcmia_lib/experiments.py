"""The four training regimes compared by the MCMIA papers (000 Tables II/IV, 001 Tables 1/5), built from a
chapter's parameters so that every notebook and background job names the same store entries.

``method``: ``baseline`` (undefended), ``pruning`` (MCMIA-Pruning: the baseline as pretraining, ADMM, hard
prune, masked retraining), ``minmax`` (Nasr et al.'s adversarial regularization) and ``pruning+minmax``
(000 Table IV: Min-Max during the masked retraining).
"""
from __future__ import annotations

from .attacks import NNAttackConfig
from .defenses.dp import DPSGD
from .defenses.minmax import MinMax
from .defenses.pruning import ADMMPruning
from .defenses.regularization import Regularization
from .runner import ExperimentSpec
from .train import TrainConfig

METHODS = ("baseline", "pruning", "minmax", "pruning+minmax")
LABELS = {"baseline": "Baseline", "pruning": "MCMIA-Pruning", "minmax": "Min-Max",
          "pruning+minmax": "Pruning & Min-Max"}


def mcmia_spec(p: dict, method: str, seed: int, rates=None) -> ExperimentSpec:
    """Spec of ``method`` for parameters ``p`` (a chapter's profile: dataset, model, width, n_target, epochs,
    batch_size, lr, optimizer, flip, crop_pad, curve_subset, pretrain_epochs (pruned methods; default epochs),
    rates, admm_epochs, retrain_epochs, rho, rho_growth, minmax_lam, minmax_steps, minmax_attack_lr, nn_epochs); ``rates`` overrides ``p["rates"]`` (Algorithm 1)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    pruned, adversarial = method.startswith("pruning"), method.endswith("minmax")
    return ExperimentSpec(
        dataset=p["dataset"], model=p["model"], width=p.get("width", 1.0), n_target=p.get("n_target"), seed=seed,
        train=TrainConfig(epochs=p.get("pretrain_epochs") or p["epochs"] if pruned else p["epochs"],
                          batch_size=p["batch_size"], lr=p["lr"], optimizer=p["optimizer"],
                          flip=p.get("flip", False), crop_pad=p.get("crop_pad", 0), curve_subset=p.get("curve_subset")),
        nn_attack=NNAttackConfig(epochs=p["nn_epochs"], init="default"),
        pruning=ADMMPruning(rates=list(rates or p["rates"]), admm_epochs=p["admm_epochs"],
                            retrain_epochs=p["retrain_epochs"], rho=p["rho"], rho_growth=p["rho_growth"])
        if pruned else None,
        minmax=MinMax(lam=p["minmax_lam"], attack_steps=p["minmax_steps"], attack_lr=p["minmax_attack_lr"])
        if adversarial else None)


def per_model_params(p: dict, model: str, num_classes: int, in_shape: tuple) -> dict:
    """Parameters of one model of a multi-model chapter (``widths`` and ``compression`` keyed by model): its
    width, per-layer rates from 001 App. E's rule set to the paper's compression (``first_rate`` first,
    ``depthwise_rate`` for depthwise layers if given), and
    the model's entry of ``overrides`` (settings that differ from the common ones, e.g. fewer members)."""
    from .defenses.pruning import rates_for_compression
    from .models import build_model
    unknown = set(p.get("overrides", {})) - set(p["widths"])
    if unknown:
        raise ValueError(f"overrides name models {sorted(unknown)} that are not among {sorted(p['widths'])}")
    net = build_model(model, num_classes, in_shape, p["widths"][model])
    own = {**{k: v for k, v in p.items() if k not in ("models", "widths", "compression", "overrides")},
           **p.get("overrides", {}).get(model, {})}
    return {**own, "model": model, "width": p["widths"][model],
            "rates": rates_for_compression(net, p["compression"][model], own["first_rate"], own.get("depthwise_rate"))}


def lomurno_configs(epsilons) -> list[str]:
    """004's seven target configurations (its tables' columns), with the DP ones at ``epsilons``."""
    return ["Baseline", *(f"DP eps={e:g}" for e in epsilons), "L2", "Dropout", "L2+Dropout"]


def lomurno_spec(p: dict, config: str, seed: int) -> ExperimentSpec:
    """Spec of one of 004's configurations (``lomurno_configs``) for parameters ``p`` (dataset, model, width,
    n_target, epochs, batch_size, lr, momentum, epsilons, delta, max_grad_norm, l2, dropout, nn_epochs):
    same data, epochs, batch and SGD for all (004 Sec. 5); DP-SGD at the target ε, L2 on the prediction
    layer, dropout. Every spec runs 004's attack (``tfp_attack``) and our common ones."""
    if config not in lomurno_configs(p["epsilons"]):
        raise ValueError(f"unknown configuration {config!r}; choose one of {lomurno_configs(p['epsilons'])}")
    dp = DPSGD(target_epsilon=float(config.split("=")[1]), delta=p["delta"], max_grad_norm=p["max_grad_norm"]) \
        if config.startswith("DP") else None
    l2 = p["l2"] if "L2" in config else None
    dropout = p["dropout"] if "Dropout" in config else None
    return ExperimentSpec(
        dataset=p["dataset"], model=p["model"], width=p.get("width", 1.0), n_target=p.get("n_target"), seed=seed,
        train=TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], optimizer="sgd",
                          momentum=p.get("momentum", 0.0), curve_subset=p.get("curve_subset")),
        nn_attack=NNAttackConfig(epochs=p["nn_epochs"], init="default") if p.get("nn_epochs") else None,
        regularization=Regularization(l2_last=l2, dropout=dropout) if l2 or dropout else None,
        dp=dp, tfp_attack=True)
