from collections import Counter

import numpy as np
import pytest

from mcmia_lib import claims
from mcmia_lib.report import references, tables, verdicts


def test_reference_records_are_complete_and_unique():
    recs = references.load_reference("mcmia")
    for r in recs:
        assert {"paper", "table", "row", "column", "value"} <= set(r), r
        assert r["paper"] in references.PAPER_FILES
    keys = Counter((r["paper"], r["table"], r["row"], r["column"]) for r in recs)
    assert max(keys.values()) == 1
    for r in recs:
        if "accuracy" in r["column"]:
            assert 0 < r["value"] <= 100, r


def test_papers_disagreements_are_recorded_with_both_values():
    """000 and 001 print different values for a few cells (issue 4): both copies must be present."""
    a = references.reference("CIFAR-100-ResNet-18", "MCMIA-Pruning attack accuracy", table="II")["value"]
    b = references.reference("CIFAR-100-ResNet-18", "MCMIA-Pruning attack accuracy", table="1")["value"]
    assert (a, b) == (74.31, 63.50)


def test_ambiguous_lookup_is_an_error():
    with pytest.raises(KeyError, match="3 reference records"):
        references.reference("MNIST-LeNet-5", "MCMIA-Pruning attack accuracy")


def test_compute_seconds_counts_shared_training_once():
    """Phases are identified by the weights keys their kind declares (``engine.phases``): a pruned model's
    pretraining is the baseline's training, its ADMM phase is shared with Pruning & Min-Max."""
    from dataclasses import replace

    from mcmia_lib import engine
    from mcmia_lib.attacks import NNAttackConfig
    from mcmia_lib.chapters import as_dict, read
    from mcmia_lib.experiments import mcmia_spec
    from mcmia_lib.store import Entry
    p = as_dict(read("mcmia_lenet5", "smoke"))
    specs = {m: mcmia_spec(p, m, 0) for m in ("baseline", "pruning", "pruning+minmax")}
    specs["other attack"] = replace(specs["baseline"], nn_attack=NNAttackConfig(epochs=1, init="normal"))
    train = [{"epoch": 1, "seconds": 10.0, "phase": "train"}, {"epoch": 2, "seconds": 10.0, "phase": "train"}]
    admm = [{"epoch": 1, "seconds": 3.0, "phase": "admm"}]
    prov = {"seconds_attacks": 1.0}
    histories = {"baseline": train, "other attack": train,
                 "pruning": train + admm + [{"epoch": 1, "seconds": 5.0, "phase": "retrain"}],
                 "pruning+minmax": train + admm + [{"epoch": 1, "seconds": 7.0, "phase": "retrain"}]}
    e = {k: Entry(engine.key(s), {}, {"history": histories[k], "provenance": prov}, phases=engine.phases(s))
         for k, s in specs.items()}
    baseline, other_attack, pruned, pmm = e["baseline"], e["other attack"], e["pruning"], e["pruning+minmax"]
    assert tables.compute_seconds([baseline, other_attack]) == 20 + 2
    assert tables.compute_seconds([baseline, pruned, pmm]) == 20 + 3 + 5 + 7 + 3
    assert tables.compute_seconds([pruned]) == 20 + 3 + 5 + 1
    assert tables.compute_seconds([pruned, pruned]) == 20 + 3 + 5 + 1  # an entry listed twice counts once
    # a shared phase that one entry trained again (no cached weights) counts once, at its smaller time, whatever
    # the order
    slow = replace(other_attack, result={"history": [{**h, "seconds": 30.0} for h in train], "provenance": prov})
    assert tables.compute_seconds([baseline, slow]) == tables.compute_seconds([slow, baseline]) == 20 + 2
    # phases whose keys are unknown are the entry's own
    assert tables.compute_seconds([replace(baseline, phases=[]), replace(other_attack, phases=[])]) == 40 + 2
    decoder = Entry("f", {},  # an inversion decoder: its history has no epoch times
                    {"history": [{"epoch": 1, "val_mse": 0.1}], "provenance": {"seconds": 4.0}})
    assert tables.compute_seconds([baseline, decoder]) == 20 + 1 + 4


def test_paired_interval_is_the_t_interval_of_the_differences():
    from scipy.stats import t
    d = np.array([1.0, 2.5, 0.5, 1.8])
    m, lo, hi = verdicts.paired_interval(d, 0.9)
    ref = t.interval(0.9, 3, loc=d.mean(), scale=d.std(ddof=1) / 2)
    assert m == d.mean() and np.allclose((lo, hi), ref)
    assert verdicts.paired_interval([3.0], 0.95) == (3.0, -np.inf, np.inf)
    with pytest.raises(ValueError, match="finite"):
        verdicts.paired_interval([1.0, np.nan])


def test_each_region_of_the_verdict_rule():
    v = verdicts.directional_verdict
    assert v(1.0, 9.0, 10.0) == "consistent" and v(1.0, 4.9, 10.0) == "smaller effect"
    assert v(0.1, 2.0, 10.0) == "smaller effect"  # zero excluded: an effect, however small
    assert v(-2.4, 2.4, 10.0) == "no effect"  # within ± a quarter of the claim
    assert v(-1.0, 4.9, 10.0) == "below half the claim, sign not resolved" and v(-1.0, 5.0, 10.0) == "inconclusive"
    assert v(-3.0, -0.1, 10.0) == "contradicted" and v(0.0, 6.0, 10.0) == "inconclusive"
    with pytest.raises(ValueError, match="positive"):
        v(1, 2, -3.0)
    e = verdicts.equivalence_verdict
    assert e(-1, 1, 2) == "consistent" and e(-1, 3, 2) == "inconclusive" and e(2.5, 3, 2) == "contradicted"


def test_every_seed_showing_an_effect_is_not_called_no_effect():
    """The review's case (issue 28): DP ε = 2 lowers the AUC by 3.09, 2.24 and 2.92 points against the paper's
    13.86. The old rule's wide interval read "no effect"; an interval whose lower end is above 0 reads "smaller
    effect", and one that holds 0 but stays below half the claim says that the sign is not resolved."""
    t = verdicts.claim_table([{"claim": "dp", "paper": 13.86, "diffs": [3.09, 2.24, 2.92]}])
    assert t.loc["dp", "verdict"] == "smaller effect" and t.loc["dp", "low"] > 0
    t = verdicts.claim_table([{"claim": f"c{i}", "paper": 13.86, "diffs": [3.09, 2.24, 2.92]} for i in range(8)])
    assert set(t["verdict"]) == {"below half the claim, sign not resolved"}  # 8 claims: wider intervals


def test_family_intervals_hold_jointly_bonferroni():
    """Each of a family's m intervals is the t-interval at 1 − 0.05 / m, so that all hold jointly at 95 %
    (Bonferroni's inequality)."""
    from scipy.stats import t as student
    assert verdicts.family_level(1) == 0.95 and verdicts.family_level(4) == pytest.approx(1 - 0.05 / 4)
    diffs = {f"c{i}": np.array([1.0 + i, 2.5, 0.5, 1.8]) for i in range(5)}
    t = verdicts.claim_table([{"claim": k, "paper": 1.0, "diffs": d} for k, d in diffs.items()])
    for k, d in diffs.items():
        lo, hi = student.interval(1 - 0.05 / 5, len(d) - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(len(d)))
        assert (t.loc[k, "low"], t.loc[k, "high"]) == pytest.approx((lo, hi))


def test_a_verdict_never_depends_on_rounding():
    # the mean difference 0.004 with a tiny spread: rounded to 2 decimals it would read 0.00 (no effect)
    diffs = [0.0040, 0.0041, 0.0039, 0.0040]
    t = verdicts.claim_table([{"claim": "c", "paper": 0.01, "diffs": diffs}])
    assert t.loc["c", "verdict"] == "smaller effect" and t.loc["c", "low"] > 0
    shown = verdicts.display_claims(t)
    assert shown.loc["c", "verdict"] == "smaller effect"  # display formats, it does not decide


def test_claim_table_gates_and_seeds_needed():
    base = {"paper": 10.0, "unit": "points"}
    claims = [{**base, "claim": "wide", "diffs": [8.0, -4.0, 6.0]},
              {**base, "claim": "worse", "diffs": [-5.0, -6.0, -5.5], "not_testable": "reference does not leak"},
              {**base, "claim": "flat", "diffs": [0.1, -0.1, 0.0], "not_testable": "reference does not leak"},
              {**base, "claim": "dead", "diffs": [9.0, 10.0, 11.0], "collapsed": "at chance"},
              {**base, "claim": "fixed", "fixed": ("no verdict", "implementations differ")},
              {**base, "claim": "one", "diffs": [12.0]},
              {**base, "claim": "one, dead", "diffs": [12.0], "collapsed": "at chance"}]
    t = verdicts.claim_table(claims)
    assert list(t["verdict"]) == ["inconclusive", "contradicted", "not testable", "collapsed", "no verdict",
                                  "one seed: no interval", "collapsed"]
    # the family: the 4 claims with an interval, each read at 1 - 0.05 / 4; the one-seed and fixed claims are outside
    assert list(t["level"].dropna()) == pytest.approx([1 - 0.05 / 4] * 4)
    assert np.isnan(t.loc["one", "level"]) and t.loc["one", "ours"] == 12.0
    need = verdicts.seeds_needed(claims[0]["diffs"], verdicts.decision_distance(np.mean(claims[0]["diffs"]), 10.0),
                                 t.loc["wide", "level"])
    assert f"{need} seeds would decide it with 80% power" in t.loc["wide", "note"]
    d = np.array(claims[0]["diffs"])  # with `need` seeds of the same mean and spread, 80% power to decide
    from scipy.stats import t as student
    level = t.loc["wide", "level"]
    width = lambda n: (student.ppf(0.5 + level / 2, n - 1) + student.ppf(0.8, n - 1)) * d.std(ddof=1) / np.sqrt(n)  # noqa: E731
    assert width(need) < max(abs(d.mean()), abs(5 - d.mean())) <= width(need - 1)


def test_a_comparison_far_from_matched_utility_says_so():
    c = {"claim": "a leaks less than b", "paper": 5.0, "diffs": [4.0, 5.0, 6.0]}
    t = verdicts.claim_table([{**c, "accuracies": (36.4, 59.3)}, {**c, "claim": "close", "accuracies": (70.0, 73.0)}])
    assert "not at matched utility: test accuracies 36.4% vs 59.3%" in t.loc["a leaks less than b", "note"]
    assert "matched utility" not in t.loc["close", "note"]


def test_ratio_runs_pair_each_run_with_its_own_dense_network():
    # run r: the dense network at (50, 70 + r); the sparse ones lose 10% accuracy and gain 20% and 40% defense
    runs = {r: {"dense": (50.0, 70.0 + r), "sparse": [(45.0, 1.2 * (70.0 + r)), (45.0, 1.4 * (70.0 + r))]}
            for r in range(3)}
    s = verdicts.ratio_runs(runs, 3.6)
    assert s["slopes"] == pytest.approx([3.0] * 3) and s["gains"] == pytest.approx([0.3] * 3)  # (0.2 + 0.4) / 2
    assert s["runs"] == 3 and s["points"].shape == (6, 2) and s["slope"] == pytest.approx(3.0)
    assert s["losses"] == pytest.approx([0.1] * 3)
    t = verdicts.claim_table(claims.sparsity_claims({"pooled": {**s, "slopes": [2.9, 3.0, 3.1],
                                                                "gains": [0.3, 0.31, 0.32]}}))
    assert t.iloc[0]["verdict"] == "consistent" and t.iloc[0]["seeds"] == 3  # a t-interval over the 3 runs
    assert t.iloc[1]["paper"] == pytest.approx(36.0) and t.iloc[1]["verdict"] == "consistent"  # 3.6 x 10 % loss


def test_reference_table_shows_both_copies_and_what_was_not_run():
    t = tables.reference_table([("000", "IV"), ("001", "5")], {("MNIST-LeNet-5", "Pruning & Min-Max test accuracy"): [99.0, 98.0]})
    cell = t.loc[("CIFAR-10-VGG16", "Pruning & Min-Max attack accuracy")]
    assert cell["paper"] == 55.93 and cell["other copy"] == "54.67 (001 Table 5)" and cell["ours (mean ± std)"] == "not run here"
    assert t.loc[("MNIST-LeNet-5", "Pruning & Min-Max test accuracy"), "ours (mean ± std)"] == "98.50 ± 0.71"
    assert set(tables.reference_table([("000", "IV")], {}, rows={"MNIST-LeNet-5"}).index.get_level_values(0)) == {"MNIST-LeNet-5"}


def test_per_class_gap_by_hand():
    """Class 0: members 2/2 correct, non-members 1/2 -> gap 50 points; the attack (threshold 0.5) gets
    3 of 4 right. Class 1: no gap, attack 2 of 4."""
    from mcmia_lib.store import Entry
    arrays = {"eval_member": np.array([1, 1, 0, 0, 1, 1, 0, 0]), "eval_label": np.array([0, 0, 0, 0, 1, 1, 1, 1]),
              "eval_pred": np.array([0, 0, 0, 1, 1, 1, 1, 1]),
              "score_nn": np.array([0.9, 0.8, 0.7, 0.1, 0.9, 0.2, 0.8, 0.1])}
    df = tables.per_class_gap({"m": [Entry("k", {"seed": 3}, {}, arrays)]}).set_index("class")
    assert df.loc[0, "train-test accuracy gap (%)"] == 50 and df.loc[0, "NN attack accuracy (%)"] == 75
    assert df.loc[1, "train-test accuracy gap (%)"] == 0 and df.loc[1, "NN attack accuracy (%)"] == 50
    assert set(df["seed"]) == {3} and set(df["method"]) == {"m"}
    with pytest.raises(KeyError, match="no per-example predictions"):
        tables.per_class_gap({"m": [Entry("k", {"seed": 0}, {}, {k: v for k, v in arrays.items() if k != "eval_pred"})]})


def test_admm_table_reads_the_phases():
    from mcmia_lib.store import Entry
    hist = [{"phase": "train", "epoch": 1, "train_acc": 0.9},
            {"phase": "admm", "epoch": 1, "admm_rho": 1e-3, "admm_residual": 0.5, "train_acc": 0.9},
            {"phase": "admm", "epoch": 2, "admm_rho": 1.3e-3, "admm_residual": 0.25, "train_acc": 0.9},
            {"phase": "retrain", "epoch": 1, "train_acc": 0.4}, {"phase": "retrain", "epoch": 2, "train_acc": 0.8}]
    row = tables.admm_table({"P": [Entry("k", {}, {"history": hist})]}).loc["P"]
    assert row["ρ (first → last ADMM epoch)"] == "0.001 → 0.0013"
    assert (row["residual, first ADMM epoch"], row["residual, last ADMM epoch"]) == ("0.500", "0.250")
    assert (row["train acc., first retraining epoch (%)"], row["train acc., last retraining epoch (%)"]) == ("40.00", "80.00")
    with pytest.raises(ValueError, match="B: entries without ADMM"):
        tables.admm_table({"B": [Entry("k", {}, {"history": hist[:1]})]})


def test_lomurno_reference_has_every_cell_of_tables_1_to_4_and_each_value_is_in_the_paper():
    from mcmia_lib.paths import REPO_ROOT
    recs = references.load_reference("lomurno")
    per_table = Counter(r["table"] for r in recs)
    assert per_table == {"1": 21, "2": 21, "3": 21, "4": 48}  # 3 datasets x 7 columns; 8 layers x 6 columns
    text = (REPO_ROOT.parent / "shared" / "papers" / references.PAPER_FILES["004"]).read_text()
    for r in recs:
        assert str(r["value"]).rstrip("0").rstrip(".") in text.replace("<b>", "").replace("</b>", ""), r
    assert references.reference("MNIST", "DP eps=2 training seconds", name="lomurno")["value"] == 1886.2


def test_gonon_reference_holds_table_1_and_each_value_is_in_the_paper():
    from mcmia_lib.paths import REPO_ROOT
    recs = references.load_reference("gonon")
    assert Counter(r["table"] for r in recs) == {"1": 23, "Sec. 4": 4, "Fig. 1": 1}  # 7 rows x 3 + IMP's 2
    text = (REPO_ROOT.parent / "shared" / "papers" / references.PAPER_FILES["002"]).read_text()
    for r in recs:
        assert f"{r['value']:g}" in text, r
    assert references.reference("Butterfly (S=2, L=3)", "% of nonzero params", name="gonon")["value"] == 12.9


def test_missing_benchmark_names_the_command_that_makes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(references, "BENCHMARK_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"benchmarks/dp_overhead\.py --save"):
        references.load_benchmark("dp_overhead")
    (tmp_path / "dp_overhead.json").write_text('{"cases": {"a": [2.0, 3.0]}}')
    assert references.load_benchmark("dp_overhead")["cases"]["a"] == [2.0, 3.0]


def test_lomurno_dp_slowdown_spans_table_2s_dp_over_baseline_times():
    recs = {(r["row"], r["column"]): r["value"] for r in references.load_reference("lomurno") if r["table"] == "2"}
    ratios = [v / recs[(row, "Baseline training seconds")] for (row, col), v in recs.items() if col.startswith("DP")]
    assert len(ratios) == 9  # 3 datasets x 3 epsilons
    lo, hi = references.lomurno_dp_slowdown()
    assert (lo, hi) == (min(ratios), max(ratios))
    assert 35 < lo < hi < 55  # 004's text says 41-50x; its Table 2 spans a little more


def test_mcmia_cells_put_each_entry_in_the_papers_cells():
    from mcmia_lib.chapters import mcmia_tables
    from mcmia_lib.store import Entry
    sp = [{"weights": 100, "nonzero": 10}, {"weights": 50, "nonzero": 5}]
    e = lambda acc, nn: Entry("k", {}, {"test_acc": acc, "train_acc": 1.0, "attacks": {"nn": {"accuracy": nn}},  # noqa: E731
                                        "sparsity": sp})
    runs = {("CIFAR-10-VGG16", "Baseline"): [e(0.9, 0.6), e(0.8, 0.7)], ("MNIST-LeNet-5", "MCMIA-Pruning"): [e(0.99, 0.5)]}
    ours = mcmia_tables.cells(runs)
    assert ours[("CIFAR-10-VGG16", "baseline attack accuracy")] == pytest.approx([60, 70])
    assert ours[("Baseline", "train accuracy")] == [100, 100] and ours[("MNIST-LeNet", "reduction ratio")] == [10]
    assert ours[("MNIST-LeNet-5", "MCMIA-Pruning test accuracy")] == [99]
