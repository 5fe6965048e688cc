from collections import Counter

import numpy as np
import pytest

from mcmia_lib import report


def test_reference_records_are_complete_and_unique():
    recs = report.load_reference("mcmia")
    for r in recs:
        assert {"paper", "table", "row", "column", "value"} <= set(r), r
        assert r["paper"] in report.PAPER_FILES
    keys = Counter((r["paper"], r["table"], r["row"], r["column"]) for r in recs)
    assert max(keys.values()) == 1
    for r in recs:
        if "accuracy" in r["column"]:
            assert 0 < r["value"] <= 100, r


def test_papers_disagreements_are_recorded_with_both_values():
    """000 and 001 print different values for a few cells (issue 4): both copies must be present."""
    a = report.reference("CIFAR-100-ResNet-18", "MCMIA-Pruning attack accuracy", table="II")["value"]
    b = report.reference("CIFAR-100-ResNet-18", "MCMIA-Pruning attack accuracy", table="1")["value"]
    assert (a, b) == (74.31, 63.50)


def test_ambiguous_lookup_is_an_error():
    with pytest.raises(KeyError, match="3 reference records"):
        report.reference("MNIST-LeNet-5", "MCMIA-Pruning attack accuracy")


def test_compute_seconds_counts_shared_training_once():
    from mcmia_lib.store import Entry
    base = {"dataset": "mnist", "model": "lenet5", "seed": 0, "train": {"epochs": 2}}
    train = [{"epoch": 1, "seconds": 10.0, "phase": "train"}, {"epoch": 2, "seconds": 10.0, "phase": "train"}]
    prov = {"seconds_attacks": 1.0}
    baseline = Entry("a", {**base, "nn_attack": {"init": "default"}}, {"history": train, "provenance": prov})
    other_attack = Entry("b", {**base, "nn_attack": {"init": "normal"}}, {"history": train, "provenance": prov})
    admm = [{"epoch": 1, "seconds": 3.0, "phase": "admm"}]
    pruned = Entry("c", {**base, "pruning": {"rates": [0.5]}},
                   {"history": train + admm + [{"epoch": 1, "seconds": 5.0, "phase": "retrain"}], "provenance": prov})
    pmm = Entry("d", {**base, "pruning": {"rates": [0.5]}, "minmax": {"lam": 1.0}},
                {"history": train + admm + [{"epoch": 1, "seconds": 7.0, "phase": "retrain"}], "provenance": prov})
    assert report.compute_seconds([baseline, other_attack]) == 20 + 2
    assert report.compute_seconds([baseline, pruned, pmm]) == 20 + 3 + 5 + 7 + 3
    assert report.compute_seconds([pruned]) == 20 + 3 + 5 + 1


def test_defense_verdicts():
    assert report.defense_verdict([0.499, 0.501, 0.5], [0.5, 0.5, 0.5], 67.0, 53.4)[0] == "not testable here"
    assert report.defense_verdict([0.66, 0.67, 0.68], [0.54, 0.53, 0.55], 67.0, 53.4)[0] == "reproduced"
    assert report.defense_verdict([0.66, 0.67, 0.68], [0.63, 0.64, 0.645], 67.0, 53.4)[0] == "partly"
    verdict, reason = report.defense_verdict([0.66, 0.60, 0.68], [0.66, 0.61, 0.67], 67.0, 53.4)
    assert verdict == "not reproduced" and "64.67% → 64.67% here (+0.00 points), 67.00% → 53.40% in the paper (-13.60)" in reason
    assert report.defense_verdict([0.68], [0.53], 67.0, 53.4)[0] == "undecided (one seed)"
    # a defense that leaks more than a compared model which does not leak at all refutes "leaks less"
    verdict, reason = report.defense_verdict([0.495, 0.50, 0.49], [0.74, 0.73, 0.735], 58.3, 57.4,
                                             baseline_name="the DP-SGD target")
    assert verdict == "reversed" and "more than the DP-SGD target" in reason
    assert report.defense_verdict([0.66, 0.67, 0.68], [0.69, 0.70, 0.71], 67.0, 53.4)[0] == "reversed"
    verdict, reason = report.defense_verdict([0.66, 0.67, 0.68], [0.5, 0.5, 0.5], 67.0, 53.4, [0.1, 0.11, 0.1], 10)
    assert verdict == "collapsed" and "10.33% is at chance (10%)" in reason
    assert report.defense_verdict([0.66, 0.67, 0.68], [0.54, 0.53, 0.55], 67.0, 53.4, [0.6, 0.6, 0.6], 10)[0] == "reproduced"


def test_reference_table_shows_both_copies_and_what_was_not_run():
    t = report.reference_table([("000", "IV"), ("001", "5")], {("MNIST-LeNet-5", "Pruning & Min-Max test accuracy"): [99.0, 98.0]})
    cell = t.loc[("CIFAR-10-VGG16", "Pruning & Min-Max attack accuracy")]
    assert cell["paper"] == 55.93 and cell["other copy"] == "54.67 (001 Table 5)" and cell["ours (mean ± std)"] == "not run here"
    assert t.loc[("MNIST-LeNet-5", "Pruning & Min-Max test accuracy"), "ours (mean ± std)"] == "98.50 ± 0.71"
    assert set(report.reference_table([("000", "IV")], {}, rows={"MNIST-LeNet-5"}).index.get_level_values(0)) == {"MNIST-LeNet-5"}


def test_per_class_gap_by_hand():
    """Class 0: members 2/2 correct, non-members 1/2 -> gap 50 points; the attack (threshold 0.5) gets
    3 of 4 right. Class 1: no gap, attack 2 of 4."""
    from mcmia_lib.store import Entry
    arrays = {"eval_member": np.array([1, 1, 0, 0, 1, 1, 0, 0]), "eval_label": np.array([0, 0, 0, 0, 1, 1, 1, 1]),
              "eval_pred": np.array([0, 0, 0, 1, 1, 1, 1, 1]),
              "score_nn": np.array([0.9, 0.8, 0.7, 0.1, 0.9, 0.2, 0.8, 0.1])}
    df = report.per_class_gap({"m": [Entry("k", {"seed": 3}, {}, arrays)]}).set_index("class")
    assert df.loc[0, "train-test accuracy gap (%)"] == 50 and df.loc[0, "NN attack accuracy (%)"] == 75
    assert df.loc[1, "train-test accuracy gap (%)"] == 0 and df.loc[1, "NN attack accuracy (%)"] == 50
    assert set(df["seed"]) == {3} and set(df["method"]) == {"m"}
    with pytest.raises(KeyError, match="no per-example predictions"):
        report.per_class_gap({"m": [Entry("k", {"seed": 0}, {}, {k: v for k, v in arrays.items() if k != "eval_pred"})]})


def test_admm_table_reads_the_phases():
    from mcmia_lib.store import Entry
    hist = [{"phase": "train", "epoch": 1, "train_acc": 0.9},
            {"phase": "admm", "epoch": 1, "admm_rho": 1e-3, "admm_residual": 0.5, "train_acc": 0.9},
            {"phase": "admm", "epoch": 2, "admm_rho": 1.3e-3, "admm_residual": 0.25, "train_acc": 0.9},
            {"phase": "retrain", "epoch": 1, "train_acc": 0.4}, {"phase": "retrain", "epoch": 2, "train_acc": 0.8}]
    row = report.admm_table({"P": [Entry("k", {}, {"history": hist})]}).loc["P"]
    assert row["ρ (first → last ADMM epoch)"] == "0.001 → 0.0013"
    assert (row["residual, first ADMM epoch"], row["residual, last ADMM epoch"]) == ("0.500", "0.250")
    assert (row["train acc., first retraining epoch (%)"], row["train acc., last retraining epoch (%)"]) == ("40.00", "80.00")
    with pytest.raises(ValueError, match="B: entries without ADMM"):
        report.admm_table({"B": [Entry("k", {}, {"history": hist[:1]})]})


def test_lomurno_reference_has_every_cell_of_tables_1_to_4_and_each_value_is_in_the_paper():
    from mcmia_lib.paths import REPO_ROOT
    recs = report.load_reference("lomurno")
    per_table = Counter(r["table"] for r in recs)
    assert per_table == {"1": 21, "2": 21, "3": 21, "4": 48}  # 3 datasets x 7 columns; 8 layers x 6 columns
    text = (REPO_ROOT.parent / "shared" / "papers" / report.PAPER_FILES["004"]).read_text()
    for r in recs:
        assert str(r["value"]).rstrip("0").rstrip(".") in text.replace("<b>", "").replace("</b>", ""), r
    assert report.reference("MNIST", "DP eps=2 training seconds", name="lomurno")["value"] == 1886.2


def test_gonon_reference_holds_table_1_and_each_value_is_in_the_paper():
    from mcmia_lib.paths import REPO_ROOT
    recs = report.load_reference("gonon")
    assert Counter(r["table"] for r in recs) == {"1": 23, "Sec. 4": 4, "Fig. 1": 1}  # 7 rows x 3 + IMP's 2
    text = (REPO_ROOT.parent / "shared" / "papers" / report.PAPER_FILES["002"]).read_text()
    for r in recs:
        assert f"{r['value']:g}" in text, r
    assert report.reference("Butterfly (S=2, L=3)", "% of nonzero params", name="gonon")["value"] == 12.9


def test_missing_benchmark_names_the_command_that_makes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "BENCHMARK_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"benchmarks/dp_overhead\.py --save"):
        report.load_benchmark("dp_overhead")
    (tmp_path / "dp_overhead.json").write_text('{"cases": {"a": [2.0, 3.0]}}')
    assert report.load_benchmark("dp_overhead")["cases"]["a"] == [2.0, 3.0]


def test_lomurno_dp_slowdown_spans_table_2s_dp_over_baseline_times():
    recs = {(r["row"], r["column"]): r["value"] for r in report.load_reference("lomurno") if r["table"] == "2"}
    ratios = [v / recs[(row, "Baseline training seconds")] for (row, col), v in recs.items() if col.startswith("DP")]
    assert len(ratios) == 9  # 3 datasets x 3 epsilons
    lo, hi = report.lomurno_dp_slowdown()
    assert (lo, hi) == (min(ratios), max(ratios))
    assert 35 < lo < hi < 55  # 004's text says 41-50x; its Table 2 spans a little more


def test_ratio_verdicts_on_002s_claim():
    rng = np.random.default_rng(0)
    loss = rng.uniform(0.02, 0.2, 12)
    noise = rng.normal(0, 0.01, 12)
    assert report.ratio_verdict(loss, 3.6 * loss + noise, 3.6, 3)[0] == "reproduced"
    verdict, b, lo, hi = report.ratio_verdict(loss, 1.0 * loss + noise, 3.6, 3)
    assert verdict == "partly (a positive trade-off, but not 3.6)" and lo < 1.0 < hi
    # gaining accuracy and losing defense also fits a slope near 3.6: that is the opposite of the claim
    verdict, b, lo, hi = report.ratio_verdict(-loss, -3.6 * loss + noise, 3.6, 3)
    assert verdict.startswith("not reproduced (the networks lose defense") and lo <= 3.6 <= hi
    wide = 3.6 * loss + np.tile([2.0, -1.9], 6)  # gains on average, but the interval holds 0 and 3.6
    assert report.ratio_verdict(loss, wide, 3.6, 3)[0] == "undecided (the interval holds both 0 and 3.6)"
    assert report.ratio_verdict(-loss, 2 * loss + noise, 3.6, 3)[0] == "not reproduced"  # gains both: no trade-off
    assert report.ratio_verdict(loss, 3.6 * loss, 3.6, 1)[0] == "undecided (one run)"
