import numpy as np
import pytest
from sklearn import metrics as skm

from mcmia_lib import metrics


def _cases():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    yield y, rng.integers(0, 6, 2000) + 0.7 * y  # many ties
    yield y, rng.normal(size=2000) + y  # continuous
    yield y, y.astype(float)  # perfect
    yield y, -y.astype(float)  # inverted
    yield y, np.zeros(2000)  # constant


@pytest.mark.parametrize("y,s", list(_cases()))
def test_auc_matches_sklearn(y, s):
    assert metrics.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("y,s", list(_cases()))
def test_roc_points_match_sklearn(y, s):
    fpr, tpr, _ = metrics.roc_curve(y, s)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


@pytest.mark.parametrize("y,s", list(_cases()))
@pytest.mark.parametrize("x", [0.0, 0.001, 0.01, 0.1, 0.5])
def test_tpr_at_fpr_is_largest_tpr_with_fpr_below(y, s, x):
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    assert metrics.tpr_at_fpr(y, s, x) == pytest.approx(sk_tpr[sk_fpr <= x].max())


@pytest.mark.parametrize("y,s", list(_cases()))
def test_tpr_on_a_grid_of_fprs_matches_sklearn(y, s):
    grid = np.r_[0.0, np.logspace(-4, 0, 17)]
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(metrics.tpr_at_fprs(y, s, grid), [sk_tpr[sk_fpr <= x].max() for x in grid])


@pytest.mark.parametrize("y,s", list(_cases()))
def test_advantage_and_accuracy(y, s):
    sk_fpr, sk_tpr, thr = skm.roc_curve(y, s, drop_intermediate=False)
    assert metrics.advantage(y, s) == pytest.approx(np.max(sk_tpr - sk_fpr))
    t = metrics.best_threshold(y, s)
    assert skm.balanced_accuracy_score(y, s >= t) == pytest.approx((1 + metrics.advantage(y, s)) / 2)
    assert metrics.attack_accuracy(y, s >= t) == pytest.approx(skm.accuracy_score(y, s >= t))


def test_extremes():
    y = np.r_[np.ones(50), np.zeros(50)]
    assert metrics.roc_auc(y, y) == 1.0 and metrics.roc_auc(y, -y) == 0.0
    assert metrics.roc_auc(y, np.ones(100)) == 0.5
    assert metrics.tpr_at_fpr(y, y, 0.0) == 1.0
    assert metrics.tpr_at_fpr(y, np.ones(100), 0.01) == 0.0  # the only ROC point with FPR <= 1% is (0, 0)
    assert metrics.advantage(y, y) == 1.0
    assert metrics.attack_accuracy(y, y) == 1.0 and metrics.attack_accuracy(y, 1 - y) == 0.0


def test_report_marks_unresolvable_fpr():
    y = np.r_[np.ones(200), np.zeros(200)]
    rep = metrics.attack_report(y, np.arange(400.0))
    assert not np.isnan(rep["tpr@0.01"]) and np.isnan(rep["tpr@0.001"])  # 200 non-members resolve 0.5%, not 0.1%


def test_defense_score_and_seed_stats():
    assert metrics.defense_score(50.0) == 100.0 and metrics.defense_score(100.0) == 0.0
    m, s = metrics.mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)
    assert metrics.mean_std([4.0]) == (4.0, 0.0)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="both members and non-members"):
        metrics.roc_auc(np.ones(10), np.arange(10))
    with pytest.raises(ValueError, match="one score per example"):
        metrics.roc_auc(np.r_[0, 1], np.arange(3))
    with pytest.raises(ValueError, match="NaN"):
        metrics.roc_auc(np.r_[0, 1], np.r_[0.0, np.nan])
    with pytest.raises(ValueError, match="fpr must be"):
        metrics.tpr_at_fpr(np.r_[0, 1], np.r_[0, 1], 1.5)


def test_js_divergence_matches_scipy_on_the_same_bins():
    from scipy.spatial.distance import jensenshannon
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 4000), rng.normal(0.7, 1.3, 3000)
    edges = np.unique(np.quantile(np.r_[a, b], np.linspace(0, 1, 31)))
    p, q = np.histogram(a, edges)[0] / a.size, np.histogram(b, edges)[0] / b.size
    assert metrics.js_divergence(a, b, bins=30) == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9)
    assert metrics.js_divergence(a, a) == pytest.approx(0.0, abs=1e-12)
    assert metrics.js_divergence(np.zeros(5), np.ones(5)) == pytest.approx(np.log(2))


def test_gain_of_chance_and_perfect_inference_models():
    member = np.r_[np.ones(500), np.zeros(500)]
    assert metrics.inference_gain(member, np.full(1000, 0.5)) == pytest.approx(-np.log(4))
    assert metrics.js_lower_bound(metrics.inference_gain(member, np.full(1000, 0.5))) == pytest.approx(0.0)
    assert metrics.js_lower_bound(metrics.inference_gain(member, member)) == pytest.approx(np.log(2), abs=1e-9)
    # a better-than-chance h has a larger gain than chance
    h = np.r_[np.full(500, 0.6), np.full(500, 0.4)]
    assert metrics.inference_gain(member, h) > -np.log(4)
    with pytest.raises(ValueError, match="probability"):
        metrics.inference_gain(member, np.r_[np.full(500, 2.0), np.zeros(500)])


def test_line_slope_matches_numpy_and_its_interval_covers():
    x = np.random.default_rng(1).uniform(40, 55, 30)
    noisy = lambda seed: 10 - 3.25 * x + np.random.default_rng(seed).normal(0, 3, 30)  # noqa: E731
    b, lo, hi = metrics.line_slope(x, noisy(0))
    assert b == pytest.approx(np.polyfit(x, noisy(0), 1)[0]) and lo < b < hi
    covered = 0
    for seed in range(400):
        _, lo, hi = metrics.line_slope(x, noisy(seed))
        covered += lo <= -3.25 <= hi
    assert 0.92 < covered / 400 < 0.98
    with pytest.raises(ValueError, match="at least 3 paired points"):
        metrics.line_slope([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])


def test_js_permutation_null_is_a_floor_of_identical_samples_and_detects_a_shift():
    rng = np.random.default_rng(0)
    same = metrics.js_permutation_test(rng.normal(size=500), rng.normal(size=500), n_perm=100)
    assert same["p_value"] > 0.05 and same["js"] <= same["null_95"] * 1.5
    # the old "floor" split sorted non-members into halves: with a class-ordered set it is no floor at all
    shifted = metrics.js_permutation_test(rng.normal(0.4, 1, 500), rng.normal(size=500), n_perm=100)
    assert shifted["p_value"] < 0.02 and shifted["js"] > shifted["null_95"]
    assert metrics.js_permutation_test([1, 2, 3], [1, 2, 3], n_perm=10, seed=3) == \
        metrics.js_permutation_test([1, 2, 3], [1, 2, 3], n_perm=10, seed=3)
