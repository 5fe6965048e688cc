"""The comparison's grid (issue 29): its configurations, budgets and tuning rules."""
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from mcmia_lib import chapters
from mcmia_lib.chapters import comparison
from mcmia_lib.paths import REPO_ROOT


def _params(profile):
    values = yaml.safe_load((REPO_ROOT / "params" / "comparison" / f"{profile}.yaml").read_text())
    return chapters.validate("comparison", {**values, "profile": profile})


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_no_configuration_trains_more_epochs_than_the_undefended_one(profile, tmp_store):
    p = _params(profile)
    for d in p.datasets:
        r = p.regimes[d]
        configs = comparison.configurations(p, d, tmp_store)
        assert len(configs["Undefended"]) == r.n_models
        for name, specs in configs.items():
            assert all(s.compact and s.pool == configs["Undefended"][0].pool for s in specs), name
            assert all(s.epochs <= r.epochs for s in specs if s.dp is None), name
            if name != "Undefended":
                assert [s.index for s in specs] == list(range(r.n_defended)), name


def test_tuned_configurations_appear_once_their_candidates_are_stored(tmp_store, monkeypatch):
    p = _params("smoke")
    stage1 = next(comparison.stages(p, tmp_store))
    assert {s.index for s in stage1} == {0}
    assert not any(k.startswith(("Min-Max", "DP-SGD")) for k in comparison.configurations(p, "digits", tmp_store))
    rows = {"val_acc": 0.8, "test_acc": 0.8, "history": [{"minmax_gain": -1.2}] * 4, "dp": {"epsilon": 7.9}}
    monkeypatch.setattr(comparison, "_stored", lambda spec, store: rows)  # every candidate's result stored
    names = list(comparison.configurations(p, "digits", tmp_store))
    assert "Min-Max" in names and any(n.startswith("DP-SGD") for n in names) and names[0] == "Undefended"
    # an inner adversary at chance (gain within 0.05 nats of -log 4): Min-Max is withheld until smaller λ are tried
    weak = {**rows, "history": [{"minmax_gain": -math.log(4) + 0.01}] * 4}
    monkeypatch.setattr(comparison, "_stored", lambda spec, store: weak)
    assert "Min-Max" not in comparison.configurations(p, "digits", tmp_store)
    assert any("add smaller λ" in w for w in comparison.tuning(p, "digits", tmp_store)["withheld"])


def test_minmax_rule_wants_an_adversary_above_chance_and_the_largest_lambda_within_the_accuracy_drop():
    chance = -math.log(4)
    rows = [{"lam": 1.0, "steps": 1, "val_acc": 0.78, "gain": chance + 0.01},   # adversary at chance
            {"lam": 1.0, "steps": 3, "val_acc": 0.77, "gain": chance + 0.20},
            {"lam": 3.0, "steps": 3, "val_acc": 0.70, "gain": chance + 0.10},   # costs 9 points
            {"lam": 3.0, "steps": 1, "val_acc": 0.75, "gain": chance + 0.06}]
    pick = comparison.choose_minmax(rows, baseline_val=0.79, max_drop=0.05, min_excess=0.05)
    assert (pick["lam"], pick["steps"], pick["qualified"], pick["edge"]) == (3.0, 1, True, True)  # try larger λ
    rows.append({"lam": 10.0, "steps": 1, "val_acc": 0.60, "gain": chance + 0.3})
    assert not comparison.choose_minmax(rows, baseline_val=0.79, max_drop=0.05, min_excess=0.05)["edge"]
    pick = comparison.choose_minmax(rows, baseline_val=0.79, max_drop=0.025, min_excess=0.05)
    assert (pick["lam"], pick["steps"], pick["qualified"]) == (1.0, 3, True)
    none = comparison.choose_minmax(rows[:1], baseline_val=0.79, max_drop=0.05, min_excess=0.05)
    assert none["qualified"] is False


def test_dp_rule_takes_the_best_validation_accuracy_and_flags_a_learning_rate_at_an_end():
    rows = [{"lr": lr, "epochs": e, "val_acc": acc} for lr, e, acc in
            ((0.1, 10, 0.55), (0.1, 20, 0.61), (0.1, 30, 0.61), (0.05, 20, 0.50), (0.3, 20, 0.58))]
    best = comparison.choose_dp(rows)
    assert (best["lr"], best["epochs"], best["edge"], best["epochs_edge"]) == (0.1, 20, False, False)  # tie: fewer
    rows.append({"lr": 0.3, "epochs": 30, "val_acc": 0.7})
    best = comparison.choose_dp(rows)
    assert best["edge"] and best["epochs_edge"]


def test_a_regime_that_breaks_the_budget_is_refused_in_one_line():
    values = yaml.safe_load((REPO_ROOT / "params" / "comparison" / "smoke.yaml").read_text())
    values["regimes"]["digits"]["admm_epochs"] = 4
    with pytest.raises(chapters.ParameterError, match="leave no pretraining within the budget of 4 epochs"):
        chapters.validate("comparison", {**values, "profile": "smoke"})
    values["regimes"]["digits"].update(admm_epochs=1, n_defended=3)
    with pytest.raises(chapters.ParameterError, match="n_defended: must be even"):
        chapters.validate("comparison", {**values, "profile": "smoke"})


def test_a_defense_is_compared_with_the_early_stopped_model_of_nearest_accuracy_paired_by_model():
    table = pd.DataFrame({"test accuracy (%)": [77.0, 50.0, 70.0, 69.0, 52.0]},
                         index=["Undefended", "Early stopping (4 epochs)", "Early stopping (16 epochs)", "L2", "DP"])
    fpr = comparison.FPR
    per = {("Undefended", "aware", "clean"): np.full(16, 0.02),
           ("Early stopping (4 epochs)", "aware", "clean"): np.array([fpr] * 8),  # no leak above chance
           ("Early stopping (16 epochs)", "aware", "clean"): np.linspace(0.010, 0.017, 8),
           ("L2", "aware", "clean"): np.linspace(0.010, 0.017, 8) - 0.005,
           ("DP", "aware", "clean"): np.full(8, fpr)}
    claims = {c["claim"]: c for c in comparison.matched_utility_claims(table, per, "cifar10")}
    l2 = claims["cifar10: L2 leaks less than early stopping at its accuracy (Early stopping (16 epochs))"]
    assert l2["diffs"] == pytest.approx([0.5] * 8)  # model i against model i: the same members
    assert l2["paper"] == pytest.approx(100 * (np.mean(np.linspace(0.010, 0.017, 8)) - fpr))
    assert l2["accuracies"] == (70.0, 69.0)
    dp = claims["cifar10: DP leaks less than early stopping at its accuracy (Early stopping (4 epochs))"]
    assert dp["fixed"][0] == "not testable"  # the matched model leaks nothing: nothing to remove
