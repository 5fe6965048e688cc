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
    assert rows[("rmia", "all")]["auc"] > 0.5
    eps = strong.empirical_epsilon(scores, g["member"], g["canary"])  # online LiRA (all NaN) is skipped
    assert eps["epsilon_lower_bound"] >= 0 and eps["targets_counted"] == 2 and eps["attack"] != "lira_online"
    assert eps["tp"] + eps["fp"] + eps["tn"] + eps["fn"] == 2 * g["canary"].sum()  # the canaries of two targets
    with pytest.raises(ValueError, match="index must be in"):
        PoolModelSpec(pool, "mlp", cfg, 4)
