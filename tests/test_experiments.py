from types import SimpleNamespace

import numpy as np
import pytest

from mcmia_lib.experiments import METHODS, mcmia_spec
from mcmia_lib.runner import training_key
from mcmia_lib.store import RUN_COMPONENTS, spec_key
from mcmia_lib.defenses.regularization import Regularization

P = dict(dataset="digits", model="mlp", n_target=300, epochs=3, batch_size=32, lr=1e-3, optimizer="adam",
         rates=[0.5, 0.5, 0.5], admm_epochs=1, retrain_epochs=1, rho=1e-3, rho_growth=1.0, minmax_lam=1.0,
         minmax_steps=1, minmax_attack_lr=1e-5, nn_epochs=2)


def test_methods_are_distinct_and_pruning_starts_from_the_baseline():
    specs = {m: mcmia_spec(P, m, seed=0) for m in METHODS}
    assert len({spec_key(s, RUN_COMPONENTS) for s in specs.values()}) == 4
    from dataclasses import replace
    pretrain = replace(specs["pruning+minmax"], pruning=None, minmax=None)
    assert training_key(pretrain) == training_key(specs["baseline"])
    assert specs["pruning+minmax"].pruning == specs["pruning"].pruning
    assert specs["minmax"].minmax.attack_lr == 1e-5 and specs["baseline"].minmax is None


def test_rates_override_and_pretrain_epochs():
    s = mcmia_spec({**P, "pretrain_epochs": 7}, "pruning", 1, rates=[0.1, 0.2, 0.3])
    assert s.pruning.rates == (0.1, 0.2, 0.3) and s.train.epochs == 7 and s.seed == 1
    assert mcmia_spec({**P, "pretrain_epochs": 7}, "baseline", 1).train.epochs == 3


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown method 'prune'"):
        mcmia_spec(P, "prune", 0)


def test_per_model_overrides():
    from mcmia_lib.experiments import per_model_params
    chapter = {**{k: v for k, v in P.items() if k not in ("model", "rates")}, "models": ["mlp", "lenet5"],
               "widths": {"mlp": 1.0, "lenet5": 1.0}, "compression": {"mlp": 4.0, "lenet5": 4.0},
               "first_rate": 0.35, "overrides": {"lenet5": {"n_target": 100, "curve_subset": 20}}}
    mlp, lenet = (per_model_params(chapter, m, 10, (1, 8, 8)) for m in ("mlp", "lenet5"))
    assert mlp["n_target"] == 300 and "curve_subset" not in mlp and "overrides" not in mlp
    assert lenet["n_target"] == 100 and mcmia_spec(lenet, "baseline", 0).train.curve_subset == 20
    assert lenet["rates"][0] == 0.35 and mlp["rates"] == per_model_params(
        {**chapter, "overrides": {"mlp": {"depthwise_rate": 0.5}}}, "mlp", 10, (1, 8, 8))["rates"]  # no depthwise
    with pytest.raises(ValueError, match=r"overrides name models \['vgg16'\]"):
        per_model_params({**chapter, "overrides": {"vgg16": {}}}, "mlp", 10, (1, 8, 8))


def test_lomurno_specs_differ_only_in_their_defense():
    from mcmia_lib.experiments import lomurno_configs, lomurno_spec
    p = {"dataset": "mnist", "model": "lomurno_cnn", "n_target": 1000, "epochs": 3, "batch_size": 200, "lr": 0.1,
         "epsilons": [2, 4, 8], "delta": 1e-5, "max_grad_norm": 1.0, "l2": 0.02, "dropout": 0.2, "nn_epochs": 0}
    configs = lomurno_configs(p["epsilons"])
    assert configs == ["Baseline", "DP eps=2", "DP eps=4", "DP eps=8", "L2", "Dropout", "L2+Dropout"]
    specs = {c: lomurno_spec(p, c, 1) for c in configs}
    base = specs["Baseline"]
    assert base.dp is None and base.regularization is None and base.nn_attack is None and base.tfp_attack
    for c, s in specs.items():
        assert (s.dataset, s.n_target, s.seed, s.train) == (base.dataset, base.n_target, base.seed, base.train)
    assert specs["DP eps=4"].dp.target_epsilon == 4.0 and specs["DP eps=4"].regularization is None
    assert specs["L2+Dropout"].regularization == Regularization(l2_last=0.02, dropout=0.2)
    assert specs["Dropout"].regularization.l2_last is None
    with pytest.raises(ValueError, match="unknown configuration 'DP eps=3'"):
        lomurno_spec(p, "DP eps=3", 0)


def test_validation_indices_are_held_out_members_excluded(tmp_store):
    from mcmia_lib.runner import ExperimentSpec, data_and_split, validation_accuracy, validation_indices
    from mcmia_lib.train import TrainConfig
    spec = ExperimentSpec("digits", "mlp", TrainConfig(epochs=5, batch_size=64, lr=1e-3, optimizer="adam"),
                          n_target=500, nn_attack=None)
    _, split = data_and_split(spec)
    idx = validation_indices(spec, 300)
    assert len(np.unique(idx)) == 300 and not np.intersect1d(idx, split.target_train).size
    assert np.array_equal(idx, validation_indices(spec, 300))
    assert not np.array_equal(idx, validation_indices(spec.with_seed(1), 300))
    assert validation_accuracy(spec, 300) > 0.5  # a trained model on 10 classes, unseen images
    with pytest.raises(ValueError, match="training images lie outside the 500 members"):
        validation_indices(spec, 5000)


def test_choose_clip_keeps_the_best_validation_accuracy_per_epsilon(monkeypatch):
    from mcmia_lib import experiments
    seen = []
    acc = {(2.0, 1.0): 0.80, (2.0, 3.0): 0.90, (2.0, 10.0): 0.90, (8.0, 1.0): 0.8, (8.0, 3.0): 0.85,
           (8.0, 10.0): 0.95}

    def fake(v, store=None):  # the stored ValidationSpec entry of one candidate
        spec = v.target
        seen.append((spec.dp.target_epsilon, spec.dp.max_grad_norm, spec.seed, v.n))
        return SimpleNamespace(result={"validation_accuracy": acc[(spec.dp.target_epsilon, spec.dp.max_grad_norm)]})
    monkeypatch.setattr(experiments, "run", fake)
    p = {"dataset": "mnist", "model": "lomurno_cnn", "n_target": 1000, "epochs": 3, "batch_size": 200, "lr": 0.1,
         "epsilons": [8, 2], "delta": 1e-5, "l2": 0.02, "dropout": 0.2, "nn_epochs": 0,
         "clip_candidates": [1, 3, 10]}
    best, rows = experiments.choose_clip(p, seed=0, n_val=123)
    assert best == {2: 3.0, 8: 10.0}  # the tie at eps 2 goes to the smaller norm
    assert sorted(seen) == sorted((e, c, 0, 123) for e, c in acc)
    assert len(rows) == 6
    spec = experiments.lomurno_spec({**p, "max_grad_norm": best}, "DP eps=8", 0)
    assert spec.dp.max_grad_norm == 10.0 and spec.dp.target_epsilon == 8.0
    with pytest.raises(ValueError, match="clip_candidates"):
        experiments.choose_clip({**p, "clip_candidates": []})


def test_table_i_rows_train_dp_on_the_mcmia_members():
    from mcmia_lib.experiments import dp_column_spec, mcmia_spec, table_i_rows
    from mcmia_lib.models import build_model
    from mcmia_lib.chapters import as_dict, read
    t = {"epsilon": 6.28, "epochs": 2, "batch_size": 100, "lr": 0.1, "momentum": 0.0, "curve_subset": 100,
         "nn_epochs": 3, "cnn_width": 0.5, "cnn_compression": 10.0}
    lenet, cifar = as_dict(read("mcmia_lenet5", "cpu")), as_dict(read("mcmia_cifar10", "cpu"))
    rows = table_i_rows(t, lenet, cifar, {"mnist": {2: 1.0, 4: 3.0, 8: 3.0}, "cifar10": {2: 3.0, 8: 10.0}}, 1e-5)
    assert list(rows) == ["MNIST-LeNet-5", "CIFAR-10-CNN"]
    for row, (dp_p, mcmia_p) in rows.items():
        dp, mc = dp_column_spec(dp_p, 2), mcmia_spec(mcmia_p, "pruning", 2)
        assert (dp.dataset, dp.model, dp.width, dp.n_target, dp.seed) == (mc.dataset, mc.model, mc.width,
                                                                            mc.n_target, mc.seed)
        assert dp.dp.target_epsilon == 6.28 and dp.train.optimizer == "sgd" and dp.nn_attack.epochs == 3
        assert dp.dp.max_grad_norm == {"mnist": 3.0, "cifar10": 10.0}[dp.dataset]
    assert rows["MNIST-LeNet-5"][1] is lenet  # the LeNet-5 chapter's own entries
    cnn = rows["CIFAR-10-CNN"][1]
    net = build_model("cifar_cnn", 10, (3, 32, 32), 0.5)
    weights = [m.weight.numel() for m in net.modules() if hasattr(m, "weight") and m.weight.dim() > 1]
    kept = sum(w * (1 - r) for w, r in zip(weights, cnn["rates"]))
    assert abs(sum(weights) / kept - 10.0) < 0.5 and cnn["width"] == 0.5 and cnn["n_target"] == cifar["n_target"]


def test_choose_clip_takes_a_single_candidate_without_training(monkeypatch):
    from mcmia_lib import experiments
    monkeypatch.setattr(experiments, "run", lambda *a: pytest.fail("nothing to choose"))
    best, rows = experiments.choose_clip({"epsilons": [2, 8], "clip_candidates": [3]})
    assert best == {2: 3.0, 8: 3.0} and rows == []
