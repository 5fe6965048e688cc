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


def test_a_defense_is_compared_with_the_least_trained_model_as_accurate_paired_by_model():
    table = pd.DataFrame({"test accuracy (%)": [77.0, 70.0, 50.0, 69.0, 48.0, 78.0, 71.0],
                          "aware, clean: at FPR (%)": 0.1},
                         index=["Undefended", "Early stopping (16 epochs)", "Early stopping (4 epochs)", "L2", "DP",
                                "Dropout", "IMP"])
    fpr = comparison.FPR
    per = {("Undefended", "aware", "clean"): np.full(16, 0.02),
           ("Early stopping (4 epochs)", "aware", "clean"): np.array([fpr] * 8),  # no leak above chance
           ("Early stopping (16 epochs)", "aware", "clean"): np.linspace(0.010, 0.017, 8),
           ("L2", "aware", "clean"): np.linspace(0.010, 0.017, 8) - 0.005,
           ("DP", "aware", "clean"): np.full(8, fpr), ("Dropout", "aware", "clean"): np.full(8, 0.01),
           ("IMP", "aware", "clean"): np.full(8, 0.01)}
    claims = {c["claim"]: c for c in comparison.matched_utility_claims(table, per, "cifar10")}
    l2 = claims["cifar10: L2 leaks less than early stopping at its accuracy (Early stopping (16 epochs))"]
    assert l2["diffs"] == pytest.approx([0.5] * 8)  # model i against model i: the same members
    assert l2["paper"] == pytest.approx(100 * (np.mean(np.linspace(0.010, 0.017, 8)) - fpr))
    assert l2["accuracies"] == (70.0, 69.0)
    dp = claims["cifar10: DP leaks less than early stopping at its accuracy (Early stopping (4 epochs))"]
    assert dp["fixed"][0] == "not testable"  # the matched model leaks nothing: nothing to remove
    # more accurate than every undefended model: against the full schedule (never one less accurate, e.g. 4 epochs)
    assert "cifar10: Dropout leaks less than early stopping at its accuracy (Undefended)" in claims
    # 71 %: the 16-epoch model (70 %, nearest) is less accurate, so the full schedule (77 %) is the comparator
    assert "cifar10: IMP leaks less than early stopping at its accuracy (Undefended)" in claims
    assert comparison.early_stopping(table.index) == ["Early stopping (4 epochs)", "Early stopping (16 epochs)",
                                                      "Undefended"]


def test_002s_ratio_pairs_each_sparse_model_with_the_undefended_model_of_its_index():
    """D = 100 − (TPR − FPR) points, 002's 200 − 2A at the headline operating point; model i against model i."""
    fpr = comparison.FPR
    idx = ["Undefended", "IMP (2 rounds)", "Butterfly (S=2, L=2)", "L2"]
    table = pd.DataFrame({"test accuracy (%)": [80.0, 78.0, 76.0, 79.0], "aware, clean: at FPR (%)": 0.1}, index=idx)
    tpr = {"Undefended": np.r_[np.full(4, 0.05), np.full(4, 0.07)], "IMP (2 rounds)": np.full(4, 0.03),
           "Butterfly (S=2, L=2)": np.full(4, 0.04), "L2": np.full(4, 0.04)}
    per = {(n, "aware", "clean"): v for n, v in tpr.items()}
    acc = {"Undefended": np.array([80.0, 81, 79, 80, 0, 0, 0, 0]), "IMP (2 rounds)": np.array([78.0, 79, 77, 78]),
           "Butterfly (S=2, L=2)": np.array([76.0, 76, 76, 76]), "L2": np.full(4, 79.0)}
    runs = comparison.sparsity_runs(per, acc, ["IMP (2 rounds)", "Butterfly (S=2, L=2)"], fpr)
    assert sorted(runs) == [0, 1, 2, 3]  # the defended block only
    assert runs[1]["dense"] == pytest.approx((81.0, 100 - 100 * (0.05 - fpr)))
    np.testing.assert_allclose(runs[1]["sparse"], [(79.0, 100 - 100 * (0.03 - fpr)), (76.0, 100 - 100 * (0.04 - fpr))])
    out = {c["claim"]: c for c in comparison.seed_claims(table, per, "cifar10", acc)}
    gain = [c for k, c in out.items() if "gain defense" in k][0]
    # model 1: relative losses 2/81 and 5/81, relative D gains 2/95.1 and 1/95.1 (in %)
    d0 = 100 - 100 * (0.05 - fpr)
    assert gain["diffs"][1] == pytest.approx(100 * np.mean([2 / d0, 1 / d0]))
    assert "model indices" in gain["note"] and "(002)" in gain["claim"]
    assert len([k for k in out if "gain defense" in k or "≈" in k]) == 2
    assert len(comparison.seed_claims(table, per, "cifar10")) == len(out) - 2  # no accuracies: not decided


def test_the_answer_puts_each_verdict_beside_its_own_configuration():
    idx = ["Undefended", "Early stopping (4 epochs)", "L2", "Dropout"]
    cols = {"test accuracy (%)": [80.0, 60.0, 79.0, 78.0]}
    for sub in comparison.SUBSETS:
        cols.update({f"aware, {sub}: TPR (%)": [5.0, 1.0, 4.0, 4.5], f"aware, {sub}: low": [4.0, 0.5, 3.0, 3.5],
                     f"aware, {sub}: high": [6.0, 1.5, 5.0, 5.5], f"aware, {sub}: at FPR (%)": 0.1 * (1 + 4 * (sub != "clean"))})
    matched = pd.DataFrame({"verdict": ["contradicted", "consistent"],
                            "configuration": [("cifar10", "Dropout"), ("cifar10", "L2")]}, index=["x", "y"])
    a = comparison.answer({"cifar10": pd.DataFrame(cols, index=idx)}, matched)
    assert list(a.index.get_level_values("configuration")) == ["Undefended", "L2", "Dropout"]  # early stopping: below
    verdict = a["leaks less than early stopping at its accuracy?"]
    assert verdict[("cifar10", "L2")] == "consistent" and verdict[("cifar10", "Dropout")] == "contradicted"
    assert a.loc[("cifar10", "Dropout"), "TPR, clean (%)"] == "4.50 [3.50, 5.50] at 0.1 % FPR"
    assert a.loc[("cifar10", "Dropout"), "TPR, canaries (%)"] == "4.50 [3.50, 5.50] at 0.5 % FPR"
    # L2 (79 %, 4.0) is more accurate than Dropout (78 %, 4.5) and leaks less; the undefended model leaks more
    dom = a["dominated by (means)"]
    assert dom[("cifar10", "L2")] == "—" and dom[("cifar10", "Dropout")] == "L2"
    assert dom[("cifar10", "Undefended")] == "—"


def test_a_subsets_tpr_is_read_where_its_pooled_non_members_leave_ten_false_positives():
    member = np.zeros((8, 500), bool)
    member[:, :250] = True  # 250 non-member canaries a target, 2,000 pooled: 10 of them is 0.5 %
    assert comparison.headline_fpr(member) == pytest.approx(0.005)
    assert comparison.headline_fpr(np.zeros((8, 20000), bool)) == comparison.FPR  # clean examples: 0.1 % holds


def test_roc_rows_average_each_targets_tpr_down_to_one_non_member():
    from mcmia_lib import metrics
    rng = np.random.default_rng(0)
    member = rng.random((3, 400)) < 0.5
    member[2, :300] = True  # the smallest target has 50-odd non-members: the grid starts at one of them
    score = member + rng.normal(0, 1, member.shape)
    rows = pd.DataFrame(comparison.roc_rows(member, score, {"configuration": "x"}, points=9))
    assert rows["FPR"].iloc[0] == pytest.approx(1 / (~member).sum(axis=1).min()) and rows["FPR"].iloc[-1] == 1
    for f, t in zip(rows["FPR"], rows["TPR"]):
        assert t == pytest.approx(np.mean([metrics.tpr_at_fpr(member[i], score[i], f) for i in range(3)]))
