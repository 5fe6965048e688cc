"""The leave-one-out grid (issue 19): masks, canaries, stored logits instead of weights, the attacks on it."""
import numpy as np
import pytest

from mcmia_lib import engine
from mcmia_lib.attacks import strong
from mcmia_lib.loo import Pool, PoolModelSpec, grid_specs, membership_masks, pool_data
from mcmia_lib.train import TrainConfig


def test_every_pool_example_is_a_member_of_exactly_half_the_models():
    masks = membership_masks(5000, 16, seed=3)
    assert masks.shape == (16, 5000) and np.all(masks.sum(0) == 8)
    assert abs(masks.sum(1).mean() - 2500) < 1 and masks.sum(1).std() > 0  # random, not a fixed pattern
    assert np.array_equal(masks, membership_masks(5000, 16, seed=3))
    assert not np.array_equal(masks, membership_masks(5000, 16, seed=4))
    with pytest.raises(ValueError, match="n_models must be even"):
        Pool("digits", 100, 10, 3)


def test_canaries_carry_a_wrong_label_that_depends_on_the_pool_alone():
    ds, idx, labels, canary = pool_data(Pool("digits", 800, 40, 4, seed=1))
    true = ds.y_train[idx].numpy()
    assert canary.sum() == 40 and np.all(labels.numpy()[canary] != true[canary])
    assert np.array_equal(labels.numpy()[~canary], true[~canary])
    again = pool_data(Pool("digits", 800, 40, 8, seed=1))  # more models: the same examples and canaries
    assert np.array_equal(again[1], idx) and np.array_equal(again[3], canary)


def test_a_small_grid_stores_logits_not_weights_and_the_attacks_read_them(tmp_store, tmp_path):
    pool = Pool("digits", 600, 60, 4, seed=0)
    cfg = TrainConfig(epochs=40, batch_size=32, lr=3e-3, optimizer="adam")
    entries = [engine.run(s, tmp_store) for s in grid_specs(pool, "mlp", cfg)]
    e = entries[0]
    assert e.key.startswith("loo-") and e.arrays["logits"].dtype == np.float16
    assert e.arrays["logits"].shape == (600, 1, 10) and e.arrays["member"].sum() == e.result["n_members"]
    assert not list((tmp_path / "weights").glob("*.pt")) and not list((tmp_path / "weights").glob("*.ckpt"))
    assert e.result["train_acc"] > 0.9 and e.result["test_acc"] > 0.6
    g = strong.grid_arrays(entries)
    assert np.all(g["member"].sum(0) == 2)
    scores = strong.attack_scores(g)
    assert np.all(np.isnan(scores["lira_online"]))  # 3 references: one IN for a member, too few for its own σ
    rows = {(r["attack"], r["subset"]): r for r in strong.attack_summary(scores, g["member"], g["canary"], n_boot=50)}
    assert rows[("lira_fixed_variance", "canaries")]["auc"] > 0.7  # the models memorise their mislabeled canaries
    assert rows[("rmia", "clean")]["auc"] > 0.5
    from mcmia_lib.report import audit
    eps = audit.one_run_audit(scores, g["member"], g["canary"])  # online LiRA (all NaN) is skipped
    assert min(eps["bounds"]) >= 0 and eps["targets_counted"] == 2 and eps["attack"] != "lira_online"
    assert all(r <= g["canary"].sum() for r, _ in eps["guesses"])  # the canaries of each counted target
    with pytest.raises(ValueError, match="index must be in"):
        PoolModelSpec(pool, "mlp", cfg, 4)


def test_holdout_logits_come_from_one_seeded_draw_of_test_images_outside_the_pool(tmp_store):
    """RMIA's population from data outside the pool (issue 28): the same test images for every model."""
    from mcmia_lib.data import load_dataset
    from mcmia_lib.loo import holdout_indices
    pool = Pool("digits", 300, 20, 2, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, optimizer="adam")
    a, b = (engine.run(PoolModelSpec(pool, "mlp", cfg, i, flip_query=True, holdout=40), tmp_store) for i in (0, 1))
    ds = load_dataset("digits")
    idx = holdout_indices(len(ds.y_test), 40, pool.seed)
    assert len(set(idx)) == 40 and not np.array_equal(idx, np.arange(40))  # a draw, not a prefix
    assert a.arrays["holdout_logits"].shape == (40, 2, 10) and a.arrays["holdout_logits"].dtype == np.float16
    assert np.array_equal(a.arrays["holdout_label"], ds.y_test[idx].numpy()) and np.array_equal(
        a.arrays["holdout_label"], b.arrays["holdout_label"])
    assert "holdout_logits" not in engine.run(PoolModelSpec(pool, "mlp", cfg, 0), tmp_store).arrays
    with pytest.raises(ValueError, match="exceeds the"):
        holdout_indices(len(ds.y_test), len(ds.y_test) + 1, 0)


def _tiny(index=0, **kw):
    from mcmia_lib.train import TrainConfig as C
    cfg = kw.pop("train", C(epochs=2, batch_size=32, lr=0.05, momentum=0.9))
    return PoolModelSpec(Pool("digits", 300, 20, 2, seed=0), kw.pop("model", "fastnet"), cfg, index, **kw)


def test_compact_entries_keep_phi_and_the_attacks_read_them_as_they_read_logits(tmp_store):
    """The comparison's layout (a tenth of the logits' size) loses nothing the attacks use."""
    from mcmia_lib.attacks.lira import logit_confidence
    full = [engine.run(_tiny(i, model="mlp"), tmp_store) for i in (0, 1)]
    compact = [engine.run(_tiny(i, model="mlp", compact=True), tmp_store) for i in (0, 1)]
    phi = logit_confidence(full[0].arrays["logits"].astype(np.float64), full[0].arrays["label"])
    assert compact[0].arrays["phi"].dtype == np.float16 and compact[0].arrays["phi"].shape == (300, 1)
    np.testing.assert_allclose(compact[0].arrays["phi"], phi, rtol=2e-3, atol=2e-2)  # same training, float16
    assert np.array_equal(compact[0].arrays["correct"],
                          full[0].arrays["logits"][:, 0].argmax(1) == full[0].arrays["label"])
    r = compact[0].result
    assert 0 <= r["val_acc"] <= 1 and r["epochs"] == 2 and r["nonzero_fraction"] == pytest.approx(1.0, abs=1e-3)
    a, b = (strong.attack_scores(strong.grid_arrays(e), attacks=("threshold", "rmia")) for e in (full, compact))
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=0.02)


def test_multi_phase_models_resume_to_the_uninterrupted_result_and_share_their_phases(tmp_store, tmp_path, monkeypatch):
    from mcmia_lib import loo
    from mcmia_lib.defenses.minmax import MinMax
    from mcmia_lib.defenses.pruning import ADMMPruning
    from mcmia_lib.weights import weights_path
    from mcmia_lib.store import Store
    spec = _tiny(compact=True, pruning=ADMMPruning((0.5,) * 8, 1, 1), minmax=MinMax(1.0, 2, 1e-3))
    assert spec.epochs == 4
    whole_plain = engine.run(_tiny(compact=True), tmp_store)  # trained alone: the early-stopping twin
    whole = engine.run(spec, tmp_store)
    assert [h["phase"] for h in whole.result["history"]] == ["train", "train", "admm", "retrain"]
    assert "minmax_gain" in whole.result["history"][-1] and "minmax_gain" not in whole.result["history"][0]
    assert 0.45 < whole.result["nonzero_fraction"] < 0.55
    real_train, calls, killed = loo.train, [], []

    def dies_in_retraining(model, data, members, cfg, seed, **kw):
        calls.append(kw["desc"])
        if kw["desc"].endswith("retrain") and not killed:
            killed.append(True)
            raise KeyboardInterrupt  # a kill after the earlier phases were stored
        return real_train(model, data, members, cfg, seed, **kw)
    monkeypatch.setattr(loo, "train", dies_in_retraining)
    monkeypatch.setenv("MCMIA_WEIGHTS", str(tmp_path / "other_weights"))  # none of the first run's phases
    other = Store(tmp_path / "other")
    with pytest.raises(KeyboardInterrupt):
        engine.run(spec, other)
    assert weights_path(loo.phase_keys(spec)[0]).exists()  # the pretraining is kept for the rerun
    resumed = engine.run(spec, other)
    assert [c.split()[-1] for c in calls] == ["train", "admm", "retrain", "retrain"]  # earlier phases not retrained
    for k in whole.arrays:
        assert np.array_equal(whole.arrays[k], resumed.arrays[k]), k
    # the phases other configurations share are trained once: ADMM's pretraining is the plain model of as many
    # epochs (an early-stopping configuration), and ADMM pruning without Min-Max shares the ADMM phase
    calls.clear()
    assert np.array_equal(engine.run(_tiny(compact=True), other).arrays["phi"], whole_plain.arrays["phi"])
    assert calls == []
    engine.run(PoolModelSpec(**{**spec.__dict__, "minmax": None}), other)
    assert [c.split()[-1] for c in calls] == ["retrain"]


def test_imp_butterfly_and_the_budget_of_a_configuration(tmp_store):
    from mcmia_lib.defenses.imp import IMP
    from mcmia_lib.defenses.dp import DPSGD
    from mcmia_lib.defenses.minmax import MinMax
    imp = engine.run(_tiny(compact=True, imp=IMP(2, keep=0.5)), tmp_store)
    assert [h["phase"] for h in imp.result["history"]] == ["train", "train", "imp1", "imp1", "imp2", "imp2"]
    assert imp.result["epochs"] == 6 and all(1 <= h["best_epoch"] <= 2 for h in imp.result["history"])
    dense = engine.run(_tiny(compact=True), tmp_store)
    bf = engine.run(_tiny(compact=True, butterfly=(2, 2)), tmp_store)
    assert bf.result["parameters"] < 0.5 * dense.result["parameters"]
    assert bf.result["nonzero_fraction"] == pytest.approx(bf.result["parameters"] / dense.result["parameters"], rel=1e-3)
    with pytest.raises(ValueError, match="set compact=True"):
        _tiny(minmax=MinMax(1.0))
    with pytest.raises(ValueError, match="DP-SGD combines here only with dropout"):
        _tiny(compact=True, minmax=MinMax(1.0), dp=DPSGD(target_epsilon=1.0, delta=1e-5, max_grad_norm=1.0))


def test_block_masks_are_exact_halves_per_block_and_over_all_models():
    pool = Pool("digits", 500, 10, 16, seed=2, block=8)
    m = pool.masks()
    assert m.shape == (16, 500) and np.all(m.sum(0) == 8)
    assert np.all(m[:8].sum(0) == 4) and np.all(m[8:].sum(0) == 4)
    assert not np.array_equal(m[:8], m[8:])
    assert np.array_equal(Pool("digits", 500, 10, 16, seed=2, block=16).masks(), Pool("digits", 500, 10, 16, 2).masks())
    with pytest.raises(ValueError, match="block must be even"):
        Pool("digits", 500, 10, 16, block=6)
