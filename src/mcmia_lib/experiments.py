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
from .runner import ExperimentSpec, ValidationSpec, run
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


def mcmia_specs(lenet: dict, cifar: dict) -> dict:
    """The specs of the MCMIA chapters at one profile, keyed by (000's row, method label): the LeNet-5
    chapter's four regimes and the CIFAR chapter's per model (``lenet`` / ``cifar``: their profile
    parameters), one per seed."""
    from .data import load_dataset
    from .report.references import ROW_NAMES
    specs = {("MNIST-LeNet-5", LABELS[k]): [mcmia_spec(lenet, k, s) for s in lenet["seeds"]] for k in METHODS}
    ds = load_dataset(cifar["dataset"])
    for m in cifar["models"]:
        p = per_model_params(cifar, m, ds.num_classes, ds.shape)
        for k in METHODS[:3] + (("pruning+minmax",) if m in cifar["pmm_models"] else ()):
            specs[(f"CIFAR-10-{ROW_NAMES[m]}", LABELS[k])] = [mcmia_spec(p, k, s) for s in p["seeds"]]
    return specs


def quickstart_spec(p: dict, seed: int) -> ExperimentSpec:
    """The quickstart's target: an MLP on the digits data (``p``: n_target, epochs, batch_size, lr, nn_epochs)."""
    return ExperimentSpec(dataset="digits", model="mlp", n_target=p["n_target"], seed=seed,
                          train=TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], optimizer="adam"),
                          nn_attack=NNAttackConfig(epochs=p["nn_epochs"], init="default"))


def lenet5_baseline_spec(p: dict, seed: int, init: str) -> ExperimentSpec:
    """000's undefended MNIST LeNet-5 attacked by the NN attack with initialisation ``init`` (``p``: width,
    n_target, epochs, batch_size, lr, optimizer, nn_epochs)."""
    return ExperimentSpec(dataset="mnist", model="lenet5", width=p["width"], n_target=p["n_target"], seed=seed,
                          train=TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                                            optimizer=p["optimizer"]),
                          nn_attack=NNAttackConfig(epochs=p["nn_epochs"], init=init))


def baseline_probe_spec(p: dict) -> ExperimentSpec:
    """LeNet-5 trained ``p["printed_lr_epochs"]`` epochs with Adam at the learning rate the papers print (its
    first seed; no NN attack): does the printed rate train?"""
    from .report.references import reference
    return ExperimentSpec(dataset="mnist", model="lenet5", width=p["width"], n_target=p["n_target"], seed=p["seeds"][0],
                          train=TrainConfig(epochs=p["printed_lr_epochs"], batch_size=p["batch_size"],
                                            lr=reference("classification model", "learning rate")["value"],
                                            optimizer="adam"), nn_attack=None)


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
    n_target, epochs, batch_size, lr, momentum, epsilons, delta, max_grad_norm (one C, or
    {ε: C} from ``choose_clip``), l2, dropout, nn_epochs):
    same data, epochs, batch and SGD for all (004 Sec. 5); DP-SGD at the target ε, L2 on the prediction
    layer, dropout. Every spec runs 004's attack (``tfp_attack``) and our common ones."""
    if config not in lomurno_configs(p["epsilons"]):
        raise ValueError(f"unknown configuration {config!r}; choose one of {lomurno_configs(p['epsilons'])}")
    dp = None
    if config.startswith("DP"):
        eps = float(config.split("=")[1])
        clip = p["max_grad_norm"][eps] if isinstance(p["max_grad_norm"], dict) else p["max_grad_norm"]
        dp = DPSGD(target_epsilon=eps, delta=p["delta"], max_grad_norm=float(clip))
    l2 = p["l2"] if "L2" in config else None
    dropout = p["dropout"] if "Dropout" in config else None
    return ExperimentSpec(
        dataset=p["dataset"], model=p["model"], width=p.get("width", 1.0), n_target=p.get("n_target"), seed=seed,
        train=TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], optimizer="sgd",
                          momentum=p.get("momentum", 0.0), curve_subset=p.get("curve_subset")),
        nn_attack=NNAttackConfig(epochs=p["nn_epochs"], init="default") if p.get("nn_epochs") else None,
        regularization=Regularization(l2_last=l2, dropout=dropout) if l2 or dropout else None,
        dp=dp, tfp_attack=True)


def clip_candidates(p: dict, seed: int = 0, n_val: int = 5000) -> dict[tuple[float, float], ValidationSpec]:
    """The validation entry of each (ε, C) that ``choose_clip`` compares (none for a single candidate)."""
    if len(p.get("clip_candidates") or []) < 2:
        return {}
    return {(e, float(c)): ValidationSpec(lomurno_spec({**p, "max_grad_norm": float(c)}, f"DP eps={e:g}", seed), n_val)
            for e in p["epsilons"] for c in p["clip_candidates"]}


def choose_clip(p: dict, seed: int = 0, n_val: int = 5000, store=None) -> tuple[dict[float, float], list[dict]]:
    """DP-SGD's clipping norm C for ``p["dataset"]`` at each ε of ``p["epsilons"]`` (004 prints none): of
    ``p["clip_candidates"]``, the one whose DP-SGD target reaches the best accuracy on ``n_val`` held-out
    training images (``clip_candidates`` lists the stored ``ValidationSpec`` entries; ties go to the smaller C;
    a single candidate is taken as is). Returns ({ε: C}, one row per ε and candidate)."""
    if not p.get("clip_candidates"):
        raise ValueError("choose_clip needs clip_candidates, e.g. [1, 3, 10]")
    if len(p["clip_candidates"]) == 1:  # nothing to choose (and no held-out data needed)
        return {e: float(p["clip_candidates"][0]) for e in p["epsilons"]}, []
    rows = [{"epsilon": e, "C": c, "validation accuracy": run(v, store).result["validation_accuracy"]}
            for (e, c), v in clip_candidates(p, seed, n_val).items()]
    best = {}
    for r in sorted(rows, key=lambda r: (r["epsilon"], -r["validation accuracy"], r["C"])):
        best.setdefault(r["epsilon"], r["C"])
    return best, rows


def dp_column_spec(p: dict, seed: int) -> ExperimentSpec:
    """000 Table I's DP column: ``p["model"]`` on ``p["dataset"]`` trained with DP-SGD (Opacus, SGD) at
    ``p["epsilon"]`` (000: 6.28 for MNIST-LeNet-5) and attacked with the NN attack of the MCMIA chapters, so
    that its attack accuracy compares with their MCMIA-Pruning column. Parameters: dataset, model, width,
    n_target, epochs, batch_size, lr, momentum, curve_subset, epsilon, delta, max_grad_norm, nn_epochs."""
    return ExperimentSpec(
        dataset=p["dataset"], model=p["model"], width=p.get("width", 1.0), n_target=p.get("n_target"), seed=seed,
        train=TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], optimizer="sgd",
                          momentum=p.get("momentum", 0.0), curve_subset=p.get("curve_subset")),
        nn_attack=NNAttackConfig(epochs=p["nn_epochs"], init="default"),
        dp=DPSGD(target_epsilon=p["epsilon"], delta=p["delta"], max_grad_norm=p["max_grad_norm"]))


def table_i_rows(t: dict, lenet: dict, cifar: dict, clip: dict, delta: float) -> dict[str, tuple[dict, dict]]:
    """000 Table I's two rows as (DP column parameters for ``dp_column_spec``, MCMIA-Pruning column parameters
    for ``mcmia_spec``). MNIST-LeNet-5: the LeNet-5 chapter's profile ``lenet``. CIFAR-10-CNN: the CIFAR
    chapter's common settings ``cifar`` on ``cifar_cnn`` at width ``t["cnn_width"]``, pruned to
    ``t["cnn_compression"]`` (000 prints none for this CNN). The DP targets train with ``t``'s SGD settings on
    the same members, at ε = ``t["epsilon"]`` with the clipping norm chosen for the dataset at the nearest ε
    (``clip[dataset]`` = {ε: C} from ``choose_clip``)."""
    cnn = per_model_params({**cifar, "widths": {"cifar_cnn": t["cnn_width"]},
                            "compression": {"cifar_cnn": t["cnn_compression"]}, "overrides": {}},
                           "cifar_cnn", 10, (3, 32, 32))
    def nearest(by_eps: dict, eps: float) -> float:
        return by_eps[min(by_eps, key=lambda e: (abs(e - eps), e))]
    dp = {k: t[k] for k in ("epsilon", "epochs", "batch_size", "lr", "momentum", "curve_subset", "nn_epochs")}
    return {row: ({**dp, "dataset": m["dataset"], "model": m["model"], "width": m.get("width", 1.0),
                   "n_target": m.get("n_target"), "delta": delta,
                   "max_grad_norm": nearest(clip[m["dataset"]], t["epsilon"])}, m)
            for row, m in (("MNIST-LeNet-5", lenet), ("CIFAR-10-CNN", cnn))}


def gonon_nets(p: dict) -> list:
    """002's networks for parameters ``p``: the dense ResNet-20, the butterfly ones (``p["butterfly"]``: one
    {segments, factors, lr, weight_decay} per row of 002's Table 1) and IMP after each of
    ``p["imp"]["prunings"]`` rounds."""
    from .sparsity import SparseNet
    return ([SparseNet("dense")] + [SparseNet("butterfly", segments=b["segments"], factors=b["factors"])
                                    for b in p["butterfly"]]
            + [SparseNet("imp", prunings=k) for k in p["imp"]["prunings"]])


def gonon_spec(p: dict, net, run: int):
    """The ``SparsitySpec`` of ``net`` (from ``gonon_nets``) in run ``run`` for parameters ``p`` (dataset,
    part, val, split_seed, epochs, batch_size, momentum, flip, crop_pad, dense / butterfly / imp learning rates
    and weight decays as in 002's Table 1, keep, attack settings, n_attack): SGD, lr / 10 at 50% and 75%."""
    from .attacks.gonon import GononAttack
    from .sparsity import SparsitySpec
    if net.kind == "butterfly":
        rows = [b for b in p["butterfly"] if (b["segments"], b["factors"]) == (net.segments, net.factors)]
        if len(rows) != 1:
            raise ValueError(f"{net.label} is not among the butterfly rows of the parameters")
        hyper = rows[0]
    else:
        hyper = p[net.kind]
    return SparsitySpec(
        net, TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=hyper["lr"], optimizer="sgd",
                         momentum=p["momentum"], weight_decay=hyper["weight_decay"], schedule="step",
                         flip=p["flip"], crop_pad=p["crop_pad"]),
        run=run, dataset=p["dataset"], part=p["part"], val=p["val"], split_seed=p.get("split_seed", 0),
        keep=p["imp"]["keep"], attack=GononAttack(**_tuples(p.get("attack", {}))), n_attack=p.get("n_attack"))


def _tuples(d: dict) -> dict:
    """YAML lists as tuples (``GononAttack``'s hidden sizes and learning rates)."""
    return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in d.items()}


def strong_attack_configs(epsilons) -> list[str]:
    """The strong-attack chapter's configurations: the undefended model and DP-SGD at each ε."""
    return ["Undefended", *(f"DP ε={e:g}" for e in epsilons)]


def strong_attack_specs(p: dict) -> dict:
    """The leave-one-out grid of the strong-attack chapter, keyed by (data set, configuration): ``p["n_models"]``
    models each on one pool per data set (``p``: datasets, model, width, n_pool, n_canary, n_models, pool_seed,
    epochs, batch_size, lr, momentum, curve_subset, epsilons, delta, max_grad_norm). Every configuration
    trains with the same SGD recipe, so DP-SGD differs from the undefended model only by clipping and noise."""
    from .loo import Pool, grid_specs
    cfg = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], optimizer="sgd",
                      momentum=p["momentum"], curve_subset=p.get("curve_subset"))
    specs = {}
    for d in p["datasets"]:
        pool = Pool(d, p["n_pool"], p["n_canary"], p["n_models"], p.get("pool_seed", 0))
        for config in strong_attack_configs(p["epsilons"]):
            dp = None if config == "Undefended" else DPSGD(target_epsilon=float(config.split("=")[1]),
                                                            delta=p["delta"], max_grad_norm=p["max_grad_norm"])
            specs[(d, config)] = grid_specs(pool, p["model"], cfg, width=p.get("width", 1.0), dp=dp)
    return specs
