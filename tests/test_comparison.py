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


def test_a_defense_meets_the_early_stopping_curve_at_its_validation_accuracy_paired_by_model():
    names = ["Undefended", "Early stopping (16 epochs)", "Early stopping (4 epochs)", "L2", "DP", "Dropout", "IMP"]
    val = [77.0, 70.0, 50.0, 69.0, 48.0, 78.0, 71.0]
    table = pd.DataFrame({"validation accuracy (%)": val, "test accuracy (%)": [v - 1 for v in val],
                          "aware, clean: TPR (%)": [2.0, 1.35, 0.1, 0.85, 0.1, 1.0, 1.0],
                          "aware, clean: at FPR (%)": 0.1}, index=names)
    fpr = comparison.FPR
    e16 = np.linspace(0.010, 0.017, 8)
    per = {("Undefended", "aware", "clean"): np.full(16, 0.02),
           ("Early stopping (4 epochs)", "aware", "clean"): np.array([fpr] * 8),  # no leak above chance
           ("Early stopping (16 epochs)", "aware", "clean"): e16,
           ("L2", "aware", "clean"): e16 - 0.005,
           ("DP", "aware", "clean"): np.full(8, fpr), ("Dropout", "aware", "clean"): np.full(8, 0.01),
           ("IMP", "aware", "clean"): np.full(8, 0.01)}
    claims = {c["configuration"][1]: c for c in comparison.matched_utility_claims(table, per, "cifar10")}
    l2 = claims["L2"]  # 69 % lies 0.95 of the way from the 4-epoch model (50 %) to the 16-epoch one (70 %)
    reference = 0.05 * fpr + 0.95 * e16
    assert l2["diffs"] == pytest.approx(list(100 * (reference - (e16 - 0.005))))  # model i against model i
    assert l2["paper"] == pytest.approx(100 * (reference.mean() - fpr))
    assert l2["accuracies"] == pytest.approx((0.05 * 49 + 0.95 * 69, 68.0))
    assert "weights 0.05 / 0.95" in l2["claim"] and l2["not_testable"] is None
    assert claims["DP"]["fixed"][0] == "not testable"  # below the curve's end, which leaks nothing
    assert "beyond the early-stopping curve" in claims["DP"]["note"]
    assert claims["Dropout"]["comparator"] == "Undefended"  # more accurate than every budget: the full schedule
    imp = claims["IMP"]  # 71 %: one seventh of the way from 16 epochs (70 %) to the full schedule (77 %)
    assert imp["diffs"] == pytest.approx(list(100 * (6 / 7 * e16 + 1 / 7 * 0.02 - 0.01)))
    assert comparison.early_stopping(table.index) == ["Early stopping (4 epochs)", "Early stopping (16 epochs)",
                                                      "Undefended"]

def test_002s_gain_pairs_each_sparse_model_with_the_undefended_model_of_its_index():
    """D = 100 × (1 − advantage), 002's 200 − 2A with the chosen attack; model i against model i."""
    idx = ["Undefended", "IMP (2 rounds)", "Butterfly (S=2, L=2)", "L2"]
    table = pd.DataFrame({"test accuracy (%)": [80.0, 78.0, 76.0, 79.0], "aware, clean: at FPR (%)": 0.1,
                          "nonzero parameters (%)": [100, 20.2, 31.0, 100]}, index=idx)
    adv = {"Undefended": np.r_[np.full(4, 0.10), np.full(4, 0.2)], "IMP (2 rounds)": np.full(4, 0.08),
           "Butterfly (S=2, L=2)": np.full(4, 0.09), "L2": np.full(4, 0.09)}
    per = {(n, "aware", "clean", "advantage"): v for n, v in adv.items()}
    per.update({(n, "aware", "clean"): np.full(len(v), 0.01) for n, v in adv.items()})
    acc = {"Undefended": np.array([80.0, 81, 79, 80, 0, 0, 0, 0]), "IMP (2 rounds)": np.array([78.0, 79, 77, 78]),
           "Butterfly (S=2, L=2)": np.array([76.0, 76, 76, 76]), "L2": np.full(4, 79.0)}
    runs = comparison.sparsity_runs(per, acc, ["IMP (2 rounds)", "Butterfly (S=2, L=2)"])
    assert sorted(runs) == [0, 1, 2, 3]  # the defended block only
    assert runs[1]["dense"] == pytest.approx((81.0, 90.0))
    np.testing.assert_allclose(runs[1]["sparse"], [(79.0, 92.0), (76.0, 91.0)])
    out = {c["claim"]: c for c in comparison.seed_claims(table, per, "cifar10", acc)}
    gain = [c for k, c in out.items() if "gain defense" in k]
    assert len(gain) == 1 and not [k for k in out if "≈" in k]  # the ratio is not decided here (its note says why)
    # model 1: relative D gains 2/90 and 1/90 (in %), against relative losses 2/81 and 5/81
    assert gain[0]["diffs"][1] == pytest.approx(100 * np.mean([2 / 90, 1 / 90]))
    assert "model indices" in gain[0]["note"] and "IMP (2 rounds) 20.2 %" in gain[0]["note"]
    assert not [k for k in comparison.seed_claims(table, per, "cifar10") if "gain" in k["claim"]]  # no accuracies


def test_dp_costs_more_accuracy_than_every_regularizer_takes_the_smallest_gap_per_model():
    idx = ["Undefended", "L2", "Dropout", "DP-SGD (ε=1)", "DP-SGD (ε=8)"]
    table = pd.DataFrame({"test accuracy (%)": [77.0, 76.0, 75.0, 50.0, 60.0], "aware, clean: at FPR (%)": 0.1},
                         index=idx)
    per = {(n, "aware", "clean"): np.full(4, 0.01) for n in idx}
    acc = {"Undefended": np.full(4, 77.0), "L2": np.full(4, 76.0), "Dropout": np.array([75.0, 74, 73, 72]),
           "DP-SGD (ε=1)": np.full(4, 50.0), "DP-SGD (ε=8)": np.array([60.0, 61, 62, 63])}
    out = {c["claim"]: c for c in comparison.seed_claims(table, per, "cifar10", acc)}
    cost = out["cifar10: DP-SGD costs more accuracy than every regularizer (004)"]
    assert cost["diffs"] == pytest.approx([15.0, 13.0, 11.0, 9.0])  # dropout − DP ε=8, model by model
    assert cost["paper"] == pytest.approx(100 * (0.649 - 0.538))  # 004's smallest gap on CIFAR-10 (L2 − DP ε=4)

def test_the_answer_puts_each_verdict_beside_its_own_configuration():
    idx = ["Undefended", "Early stopping (4 epochs)", "L2", "Dropout"]
    cols = {"test accuracy (%)": [80.0, 60.0, 79.0, 78.0]}
    for sub in comparison.SUBSETS:
        cols.update({f"aware, {sub}: TPR (%)": [5.0, 1.0, 4.0, 4.5], f"aware, {sub}: low": [4.0, 0.5, 3.0, 3.5],
                     f"aware, {sub}: high": [6.0, 1.5, 5.0, 5.5], f"aware, {sub}: at FPR (%)": 0.1 * (1 + 4 * (sub != "clean"))})
    matched = pd.DataFrame({"verdict": ["contradicted", "consistent"],
                            "configuration": [("cifar10", "Dropout"), ("cifar10", "L2")],
                            "comparator": ["Undefended", "Early stopping (4 epochs)"],
                            "note": ["", "not at matched utility: test accuracies 60.0% vs 79.0%"]}, index=["x", "y"])
    a = comparison.answer({"cifar10": pd.DataFrame(cols, index=idx)}, matched)
    assert list(a.index.get_level_values("configuration")) == ["Undefended", "L2", "Dropout"]  # early stopping: below
    verdict = a["leaks less than early stopping at its accuracy?"]
    assert verdict[("cifar10", "L2")] == "consistent; not at matched utility"
    assert verdict[("cifar10", "Dropout")] == "contradicted"
    assert a.loc[("cifar10", "L2"), "early-stopping comparator"] == "Early stopping (4 epochs)"
    assert a.loc[("cifar10", "Dropout"), "TPR, clean (%)"] == "4.50 [3.50, 5.50] at 0.1 % FPR"
    assert a.loc[("cifar10", "Dropout"), "TPR, canaries (%)"] == "4.50 [3.50, 5.50] at 0.5 % FPR"
    # L2 (79 %, 4.0) is more accurate than Dropout (78 %, 4.5) and leaks less; the undefended model leaks more
    dom = a["dominated by (means)"]
    assert dom[("cifar10", "L2")] == "—" and dom[("cifar10", "Dropout")] == "L2"
    assert dom[("cifar10", "Undefended")] == "—"


def test_a_subsets_tpr_is_read_where_each_targets_non_members_leave_ten_false_positives():
    member = np.zeros((8, 500), bool)
    member[:, :250] = True  # 250 non-member canaries a target: 10 of them is 4 %
    member[3, 250] = True  # the target with fewest non-members decides
    assert comparison.headline_fpr(member) == pytest.approx(10 / 249)
    assert comparison.headline_fpr(np.zeros((8, 20000), bool)) == comparison.FPR  # 20 false positives: 0.1 % holds
    assert comparison.headline_fpr(np.zeros((8, 9750), bool)) == pytest.approx(10 / 9750)  # CIFAR-10's clean pool


def test_roc_rows_average_each_targets_tpr_down_to_ten_non_members():
    from mcmia_lib import metrics
    rng = np.random.default_rng(0)
    member = rng.random((3, 400)) < 0.5
    member[2, :300] = True  # the smallest target has 50-odd non-members: the grid starts at ten of them
    score = member + rng.normal(0, 1, member.shape)
    rows = pd.DataFrame(comparison.roc_rows(member, score, {"configuration": "x"}, points=9))
    assert rows["FPR"].iloc[0] == pytest.approx(10 / (~member).sum(axis=1).min()) and rows["FPR"].iloc[-1] == 1
    for f, t in zip(rows["FPR"], rows["TPR"]):
        assert t == pytest.approx(np.mean([metrics.tpr_at_fpr(member[i], score[i], f) for i in range(3)]))


def test_each_half_of_the_targets_is_scored_by_the_attack_the_other_half_chose():
    """The referee: an attack chosen on the targets it is scored on inflates every verdict built on it."""
    rng = np.random.default_rng(1)
    member = rng.random((8, 2000)) < 0.5
    noise = rng.normal(0, 1, member.shape)
    first, second = comparison.crossfit({"x": noise, "y": noise}, member, 0.01)["halves"]
    x, y = noise.copy(), noise.copy()
    x[second] += 3 * member[second]  # x separates members only on the second half's targets, y on the first's
    y[first] += 3 * member[first]
    out = comparison.crossfit({"x": x, "y": y, "broken": np.full(member.shape, np.nan)}, member, 0.01)
    assert out["attacks"] == ("x", "y")  # the first half scored by x, chosen on the second half (and vice versa)
    np.testing.assert_array_equal(out["score"][first], x[first])
    np.testing.assert_array_equal(out["score"][second], y[second])


def test_the_early_stopping_curve_drops_budgets_another_one_dominates():
    names = ["Undefended", "Early stopping (30 epochs)", "Early stopping (40 epochs)", "Early stopping (16 epochs)",
             "L2"]
    table = pd.DataFrame({"validation accuracy (%)": [77.2, 76.8, 76.7, 75.4, 90.0],
                          "aware, clean: TPR (%)": [9.0, 3.0, 6.0, 1.0, 0.1]}, index=names)
    # 40 epochs: less accurate and leakier than 30; L2 is a defense, never part of the baseline
    assert comparison.early_stopping_curve(table) == ["Early stopping (16 epochs)", "Early stopping (30 epochs)",
                                                      "Undefended"]


def test_dp_sgd_spends_its_longer_runs_on_the_learning_rate_best_at_the_fewest_epochs(tmp_store, monkeypatch):
    """DP-SGD's tuning in two steps: every learning rate at the fewest epochs, then more epochs only at the best."""
    values = yaml.safe_load((REPO_ROOT / "params" / "comparison" / "smoke.yaml").read_text())
    values["regimes"]["digits"].update(dp_lrs=[0.1, 0.3, 1.0], dp_epochs=[2, 4])
    p = chapters.validate("comparison", {**values, "profile": "smoke"})
    first = comparison.dp_first_step(p, "digits", 8)
    assert sorted(k[1] for k in first) == [0.1, 0.3, 1.0] and {k[2] for k in first} == {2}
    stored = {}
    from mcmia_lib import engine
    key_of = {engine.key(s): k for k, s in comparison.dp_candidates(p, "digits", 8).items()}
    acc = {0.1: 0.5, 0.3: 0.7, 1.0: 0.6}

    def fake(spec, store):
        k = key_of.get(engine.key(spec))
        if k is None or (k[2] == 4 and not stored.get("second")):
            return None
        return {"val_acc": acc[k[1]] + 0.01 * (k[2] == 4), "test_acc": 0.6, "dp": {"epsilon": 7.9}}
    monkeypatch.setattr(comparison, "_stored", fake)
    stages = comparison.stages(p, tmp_store)
    one = next(stages)
    assert {key_of[engine.key(s)] for s in one if engine.key(s) in key_of} == set(first)
    two = next(stages)
    assert [key_of[engine.key(s)] for s in two if engine.key(s) in key_of] == [(128, 0.3, 4, 1.0)]
    assert not any(s.dp is not None and s.index > 0 for s in two)  # DP-SGD's configuration waits for its choice
    stored["second"] = True
    three = next(stages)
    assert {s.index for s in three if s.dp is not None} == set(range(1, p.regimes["digits"].n_defended))
    rows, choice = comparison.tuning(p, "digits", tmp_store)["dp"][8]
    assert len(rows) == 4 and (choice["lr"], choice["epochs"]) == (0.3, 4)
