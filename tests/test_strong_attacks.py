"""LiRA, RMIA and the strong-attack metrics against closed forms and simulations (issue 19)."""
import numpy as np
import pytest
from scipy.stats import norm

from mcmia_lib import metrics
from mcmia_lib.attacks.lira import lira_scores, logit_confidence
from mcmia_lib.attacks.rmia import marginal, rmia_scores


def _logits(phi):
    """Two-class logits whose logit-scaled confidence for label 0 is ``phi``: (..., n, q, 2)."""
    phi = np.asarray(phi, dtype=np.float64)
    return np.stack([phi, np.zeros_like(phi)], -1)


def test_logit_confidence_is_the_log_odds_of_the_true_class_and_stays_finite():
    z = np.random.default_rng(0).normal(size=(3, 5, 2, 4))
    y = np.array([0, 1, 2, 3, 1])
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    py = np.take_along_axis(p, np.broadcast_to(y[None, :, None, None], (3, 5, 2, 1)), -1)[..., 0]
    assert np.allclose(logit_confidence(z, y), np.log(py / (1 - py)))
    big = np.array([[[200.0, 0.0, -5.0]]])  # p_y rounds to 1 in float64
    assert np.isclose(logit_confidence(big, np.array([0]))[0, 0], 200.0 - np.log1p(np.exp(-5.0)))


def test_lira_online_and_offline_match_the_closed_form_gaussian_tests():
    rng = np.random.default_rng(1)
    n, r, q = 40, 64, 2
    mu_in, mu_out = rng.normal(3, 1, n), rng.normal(0, 1, n)
    ref_in = np.zeros((r, n), bool)
    for i in range(n):
        ref_in[rng.permutation(r)[: r // 2], i] = True
    phi_ref = np.where(ref_in[..., None], mu_in[None, :, None], mu_out[None, :, None]) + rng.normal(0, 1, (r, n, q))
    phi_t = rng.normal(1.5, 1, (n, q))
    labels = np.zeros(n, int)
    online = lira_scores(_logits(phi_t), _logits(phi_ref), ref_in, labels)
    offline = lira_scores(_logits(phi_t), _logits(phi_ref), ref_in, labels, online=False)
    m = ref_in[..., None]
    mi = (phi_ref * m).sum(0) / m.sum(0)
    mo = (phi_ref * ~m).sum(0) / (~m).sum(0)
    si = np.sqrt(((phi_ref - mi) ** 2 * m).sum(0) / m.sum(0))
    so = np.sqrt(((phi_ref - mo) ** 2 * ~m).sum(0) / (~m).sum(0))
    assert np.allclose(online, (norm.logpdf(phi_t, mi, si) - norm.logpdf(phi_t, mo, so)).mean(1))
    assert np.allclose(offline, -norm.logsf(phi_t, mo, so).mean(1))
    # with many references the estimated ratio approaches the true one (σ = 1 both sides)
    truth = (norm.logpdf(phi_t, mu_in[:, None], 1) - norm.logpdf(phi_t, mu_out[:, None], 1)).mean(1)
    assert np.corrcoef(online, truth)[0, 1] > 0.95
    fixed = lira_scores(_logits(phi_t), _logits(phi_ref), ref_in, labels, fix_variance=True)
    pooled_in = np.sqrt((si ** 2).mean(0))
    pooled_out = np.sqrt((so ** 2).mean(0))
    assert np.allclose(fixed, (norm.logpdf(phi_t, mi, pooled_in) - norm.logpdf(phi_t, mo, pooled_out)).mean(1))
    with pytest.raises(ValueError, match="fewer than 2 (IN|OUT) reference model.*fix_variance=True"):
        lira_scores(_logits(phi_t), _logits(phi_ref[:1]), ref_in[:1], labels)


def test_online_beats_offline_beats_the_threshold_attack_on_a_memorization_model():
    """Examples differ in hardness (a per-example offset far larger than the membership shift), so a global
    threshold on φ is weak, per-example calibration (offline) is better, modelling IN as well (online) best."""
    rng = np.random.default_rng(2)
    n, r = 4000, 64
    hardness = rng.normal(0, 4, n)
    shift = rng.uniform(0.5, 2.0, n)
    ref_in = np.zeros((r, n), bool)
    for i in range(n):
        ref_in[rng.permutation(r)[: r // 2], i] = True
    phi_ref = hardness + shift * ref_in + rng.normal(0, 1, (r, n))
    member = rng.random(n) < 0.5
    phi_t = hardness + shift * member + rng.normal(0, 1, n)
    args = (_logits(phi_t[:, None]), _logits(phi_ref[..., None]), ref_in, np.zeros(n, int))
    tpr = {name: metrics.tpr_at_fpr(member, s, 0.01) for name, s in (
        ("online", lira_scores(*args, fix_variance=True)), ("offline", lira_scores(*args, online=False, fix_variance=True)),
        ("threshold", phi_t))}
    assert tpr["online"] > tpr["offline"] > tpr["threshold"], tpr


def test_rmia_on_a_hand_built_example():
    # four examples; Pr(x) from two references (mean), the population = examples 2 and 3
    target = np.array([0.9, 0.5, 0.4, 0.2])
    refs = np.array([[0.6, 0.5, 0.4, 0.4], [0.6, 0.5, 0.4, 0.4]])
    ref_in = np.array([[True, False, False, True], [False, True, True, False]])
    # ratios Pr(x|θ)/Pr(x): 1.5, 1.0, 1.0, 0.5
    s = rmia_scores(target, refs, ref_in, population=np.array([2, 3]))
    assert np.allclose(s, [1.0, 1.0, 1.0, 0.0])  # x=2 vs z=3 only: 1.0/0.5 >= 1; x=3 vs z=2: 0.5/1.0 < 1
    assert s[0] > s[1] == s[2]  # tied scores ordered by the ratio: 1.5 > 1.0 = 1.0
    s2 = rmia_scores(target, refs, ref_in, population=np.array([2, 3]), gamma=1.6)
    assert np.allclose(s2, [0.5, 0.5, 1.0, 0.0])  # x=0: LR 1.5 (z=2) < 1.6 <= 3 (z=3); x=2: 2 (z=3) >= 1.6
    # offline marginal from the OUT references: ½[(1 + a)·Pr_OUT + (1 − a)]
    assert np.allclose(marginal(refs, ref_in, a=0.5), 0.5 * (1.5 * np.array([0.6, 0.5, 0.4, 0.4]) + 0.5))
    with pytest.raises(ValueError, match="gamma must be > 0"):
        rmia_scores(target, refs, ref_in, np.array([2, 3]), gamma=0)


def test_clopper_pearson_covers_the_true_rate_about_as_often_as_it_says():
    rng = np.random.default_rng(3)
    for p, n in ((0.02, 500), (0.3, 80)):
        ks = rng.binomial(n, p, 2000)
        covered = np.mean([lo <= p <= hi for lo, hi in (metrics.clopper_pearson(k, n) for k in ks)])
        assert 0.94 <= covered <= 0.995, (p, n, covered)  # exact intervals are conservative


def test_tpr_at_fpr_ci_is_unresolved_below_ten_false_positives_and_brackets_the_tpr():
    rng = np.random.default_rng(4)
    member = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    score = np.r_[rng.normal(1, 1, 2000), rng.normal(0, 1, 2000)]
    tpr, lo, hi = metrics.tpr_at_fpr_ci(member, score, 0.01)
    assert lo <= tpr <= hi and tpr == metrics.tpr_at_fpr(member, score, 0.01)
    assert (lo, hi) == metrics.clopper_pearson(round(tpr * 2000), 2000)
    assert np.isnan(metrics.tpr_at_fpr_ci(member, score, 0.001)[0])  # 2000 × 0.001 = 2 false positives


def test_target_bootstrap_resamples_targets_not_examples():
    rng = np.random.default_rng(5)
    member = np.tile(np.r_[np.ones(100, bool), np.zeros(100, bool)], (8, 1))
    leak = np.linspace(0, 2, 8)[:, None]  # targets differ: the interval must see that spread
    score = rng.normal(0, 1, member.shape) + leak * member
    value, lo, hi = metrics.target_bootstrap(member, score, metrics.roc_auc, n_boot=300)
    assert lo < value < hi and hi - lo > 0.05
    same = rng.normal(0, 1, member.shape) + 1.0 * member
    _, lo2, hi2 = metrics.target_bootstrap(member, same, metrics.roc_auc, n_boot=300)
    assert hi2 - lo2 < hi - lo


def test_balanced_references_remove_the_leave_one_out_tell_of_exact_half_masks():
    """Logits without any membership signal (noise plus a per-model offset): with every example in exactly half
    of the models, attacking with all other models as references scores members lower (LiRA's side fitted on
    fewer models is penalised), an AUC far below 0.5; with as many IN as OUT references per example it is 0.5."""
    from mcmia_lib.attacks import strong
    from mcmia_lib.loo import membership_masks
    m, n, c = 4, 3000, 10
    rng = np.random.default_rng(0)
    member, label = membership_masks(n, m, 0), rng.integers(0, c, n)
    logits = rng.normal(size=(m, n, 1, c))
    logits[np.arange(m)[:, None], np.arange(n)[None, :], 0, label[None, :]] += rng.normal(0, 1, (m, 1))
    g = {"logits": logits, "member": member, "canary": np.zeros(n, bool), "label": label}
    use = strong.reference_use(member[1:], np.random.default_rng(1))
    assert np.array_equal((use & member[1:]).sum(0), (use & ~member[1:]).sum(0))  # as many IN as OUT
    assert (use.sum(0) == 2).all()  # M = 4: one of each side
    one = strong.reference_use(member[1:], np.random.default_rng(1), n_refs=1)  # IN or OUT by a fair coin
    assert (one.sum(0) == 1).all()
    for is_member in (True, False):  # the same chance of an IN reference for members and non-members
        assert abs((one & member[1:])[:, member[0] == is_member].sum(0).mean() - 0.5) < 0.03
    with pytest.raises(ValueError, match="n_refs=3: some example has only 1 reference model"):
        strong.reference_use(member[1:], np.random.default_rng(1), n_refs=3)
    balanced = {**strong.attack_scores(g, attacks=("lira_fixed_variance", "rmia")),
                "rmia, 1 reference": strong.attack_scores(g, attacks=("rmia",), n_refs=1)["rmia"]}
    for attack, s in balanced.items():
        assert abs(np.mean([metrics.roc_auc(member[t], s[t]) for t in range(m)]) - 0.5) < 0.02, attack
    unbalanced = [metrics.roc_auc(member[t], lira_scores(logits[t], np.delete(logits, t, 0), np.delete(member, t, 0),
                                                         label, fix_variance=True)) for t in range(m)]
    assert np.mean(unbalanced) < 0.45


def test_findings_split_clean_and_canaries_and_say_at_chance_when_no_attack_beats_it():
    from mcmia_lib.chapters.strong_attacks import findings, named_attack

    def row(attack, subset, tpr, lo, config="DP ε=8"):
        return {"data set": "MNIST", "configuration": config, "attack": attack, "subset": subset,
                "tpr@0.001": tpr, "tpr@0.001_boot_lo": lo, "tpr@0.001_boot_hi": 2 * tpr}
    rows = [row("threshold", "clean", 0.002, 0.0005), row("rmia", "clean", 0.0015, 0.0004),
            row("lira_online", "canaries", 0.05, 0.02), row("lira_fixed_variance", "clean", 0.3, 0.2, "Undefended"),
            row("lira_fixed_variance", "canaries", 0.9, 0.8, "Undefended")]
    agree = lambda a: {"attack": a, "half_a": a, "half_b": a, "agree": True}  # noqa: E731
    split = {"attack": "rmia", "half_a": "rmia", "half_b": "threshold", "agree": False}
    choices = {("MNIST", "DP ε=8"): {"clean": split, "canaries": agree("lira_online")},
               ("MNIST", "Undefended"): {"clean": agree("lira_fixed_variance"), "canaries": agree("lira_fixed_variance")}}
    audit = {"median": 0.2, "min": 0.0, "max": 0.5, "targets_counted": 16, "joint_max": 0.3, "joint_certifiable": 4.63}
    audits = {("MNIST", "DP ε=8"): {**audit, "accountant": 8.0}, ("MNIST", "Undefended"): {**audit, "accountant": np.inf}}
    t = findings(rows, choices, audits, {("MNIST", "DP ε=8"): 90.0, ("MNIST", "Undefended"): 98.0})
    dp = t.loc[("MNIST", "DP ε=8")]
    assert dp["clean: strongest attack"] == "at chance"  # its interval holds 0.1 %
    assert dp["clean: TPR (%)"] == "0.15 [0.04, 0.30]" and dp["canaries: strongest attack"] == "lira online"
    assert dp["chance TPR @ 0.1 % FPR (%)"] == "0.1" and dp["test accuracy (%)"] == "90.00"
    assert dp["empirical ε (95 % lower bound, best target)"] == "0.30"
    assert dp["per-target bounds: median [min, max]"] == "0.20 [0.00, 0.50] of 16"
    assert dp["largest certifiable ε"] == "4.63" and dp["accountant ε"] == "8.00"
    undefended = t.loc[("MNIST", "Undefended")]
    assert undefended["canaries: TPR (%)"] == "90.00 [80.00, 180.00]" and undefended["accountant ε"] == "none (not DP)"
    # the halves agree but the rate holds chance: at chance; they disagree above chance: both names
    assert named_attack(agree("rmia"), row("rmia", "clean", 0.0015, 0.0004), "tpr@0.001", 0.001) == "at chance"
    assert named_attack(split, row("rmia", "clean", 0.05, 0.02), "tpr@0.001", 0.001) == \
        "rmia or threshold (the halves disagree)"


def test_roc_bootstrap_equals_the_generic_target_bootstrap_with_ties():
    rng = np.random.default_rng(3)
    y = rng.random((7, 400)) < 0.5
    s = np.round(rng.normal(size=(7, 400)) + 0.8 * y, 1)  # rounded: many ties between members and non-members
    fast = metrics.roc_bootstrap(y, s, fprs=(0.05, 0.001), n_boot=40, seed=5)
    assert fast["auc"] == pytest.approx(metrics.target_bootstrap(y, s, metrics.roc_auc, 40, seed=5), abs=1e-12)
    tpr = metrics.target_bootstrap(y, s, lambda a, b: metrics.tpr_at_fpr_ci(a, b, 0.05)[0], 40, seed=5)
    assert fast[0.05] == pytest.approx(tpr, abs=1e-12)
    assert all(np.isnan(fast[0.001]))  # 0.001 x ~1,400 non-members < 10 false positives: unresolved


def test_references_from_another_configuration_must_share_the_pool_and_default_to_the_targets_own():
    from mcmia_lib.attacks import strong
    from mcmia_lib.loo import membership_masks
    rng = np.random.default_rng(0)
    m, n = 6, 300
    member, label = membership_masks(n, m, 0), rng.integers(0, 3, n)
    g = {"logits": rng.normal(size=(m, n, 1, 3)) + 2 * member[:, :, None, None] * np.eye(3)[label][None, :, None],
         "member": member, "canary": np.zeros(n, bool), "label": label}
    own = strong.attack_scores(g, attacks=("lira_online", "rmia"))
    same = strong.attack_scores(g, attacks=("lira_online", "rmia"), references=dict(g))
    assert all(np.array_equal(own[a], same[a]) for a in own)
    shifted = {**g, "logits": g["logits"] + 5 * np.eye(3)[label][None, :, None]}  # far more confident references
    assert not np.array_equal(strong.attack_scores(g, attacks=("lira_online",), references=shifted)["lira_online"],
                              own["lira_online"])
    with pytest.raises(ValueError, match="other membership masks or labels: build both from one Pool"):
        strong.attack_scores(g, references={**g, "member": membership_masks(n, m, 1)})


def test_the_strongest_attack_is_chosen_on_each_half_of_the_targets_and_epsilon_on_other_targets():
    from mcmia_lib.attacks import strong
    rng = np.random.default_rng(0)
    member = rng.random((8, 4000)) < 0.5
    canary = np.zeros(4000, bool)
    canary[:400] = True
    noise = rng.normal(size=member.shape)
    scores = {"weak": noise + 0.5 * member, "strong": rng.normal(size=member.shape) + 3 * member,
              "broken": np.full(member.shape, np.nan)}
    choice = strong.strongest_attack(scores, member)
    assert choice == {"attack": "strong", "half_a": "strong", "half_b": "strong", "agree": True}
    # an attack that is strong on half of the targets only: the halves disagree and the maximin choice is taken
    halves = strong._halves(np.arange(8), 0)
    odd = scores["weak"].copy()
    odd[halves[0]] = 10.0 * member[halves[0]] + rng.normal(size=(4, 4000))
    choice = strong.strongest_attack({"weak": scores["weak"], "odd": odd, "mid": noise + 2 * member}, member)
    assert not choice["agree"] and choice["half_a"] == "odd" and choice["attack"] == "mid"
    # chosen on the canaries alone: an attack strong on the canaries only wins there, not on the clean examples
    canary_only = noise + 6 * member * canary
    by = {"weak": scores["weak"], "canary only": canary_only}
    assert strong.strongest_attack(by, member, columns=canary)["attack"] == "canary only"
    assert strong.strongest_attack(by, member, columns=~canary)["attack"] == "weak"


def test_on_the_committed_grid_no_dp_sgd_target_certifies_more_than_its_accountant_epsilon():
    """A bug in training, accounting or the attacks could show an empirical ε above the accountant's. At ε = 1 the
    check can fail: 650 canaries can certify up to about 5.4 (``audit.largest_certifiable``)."""
    from mcmia_lib import engine
    from mcmia_lib.attacks import strong
    from mcmia_lib.chapters import as_dict, read
    from mcmia_lib.experiments import strong_attack_specs
    from mcmia_lib.paths import REPO_ROOT
    from mcmia_lib.report import audit
    from mcmia_lib.store import Store
    committed = Store(REPO_ROOT / "data" / "results")
    p = as_dict(read("strong_attacks", "cpu"))
    checked = 0
    for (dataset, config), specs in strong_attack_specs(p).items():
        if config == "Undefended" or not all(engine.is_stored(s, committed) for s in specs):
            continue
        entries = [engine.run(s, committed) for s in specs]
        g = strong.grid_arrays(entries)
        out = audit.one_run_audit(strong.attack_scores(g), g["member"], g["canary"], delta=p["delta"])
        accountant = float(np.mean([e.result["dp"]["epsilon"] for e in entries]))  # as the chapter
        joint = 1 - 0.05 / out["targets_counted"]
        assert max(audit.epsilon_lower_bound(out["canaries"], r, v, p["delta"], joint) for r, v in out["guesses"]) \
            <= accountant, (dataset, config, out["bounds"])
        checked += accountant < audit.largest_certifiable(out["canaries"], p["delta"], joint)
    if not checked:
        pytest.skip("no DP-SGD grid of the committed store has an ε this design can check")


def test_rmia_takes_its_population_from_held_out_samples_and_unaware_references_from_a_larger_block_grid():
    """Issue 28/29: RMIA's population z from outside the pool (the comparison stores outputs on held-out test
    images); undefended references from more models than the target's configuration has (block masks), never
    the target's twin; without a membership signal every attack stays at chance."""
    from mcmia_lib.attacks import strong
    from mcmia_lib.attacks.rmia import rmia_scores
    from mcmia_lib.loo import membership_masks
    rng = np.random.default_rng(3)
    n, h = 2000, 300
    member = membership_masks(n, 8, 0, block=4)  # two blocks of 4: the first is the "defended" grid's masks

    def grid(m, signal):
        phi = rng.normal(size=(m, n, 1)) + signal * member[:m, :, None]
        return {"phi": phi, "member": member[:m], "canary": np.zeros(n, bool), "label": np.zeros(n, int),
                "holdout_phi": rng.normal(size=(m, h, 1))}
    # the population pair: the target's and the references' probabilities on h samples none of them trained on
    p_t, p_r = rng.random(n), rng.random((3, n))
    pop = (rng.random(h), rng.random((3, h)))
    s = rmia_scores(p_t, p_r, np.zeros((3, n), bool), pop)
    ratio_z = np.sort(pop[0] / pop[1].mean(0))
    assert np.allclose(s, np.searchsorted(ratio_z, p_t / p_r.mean(0), side="right") / h, atol=1e-8)
    flat = grid(8, 0.0)
    for a, sc in strong.attack_scores(flat, attacks=("rmia", "rmia_offline", "lira_offline")).items():
        assert abs(np.mean([metrics.roc_auc(member[t], sc[t]) for t in range(8)]) - 0.5) < 0.03, a
    undefended = grid(8, 3.0)
    unaware = strong.attack_scores(grid(4, 3.0), attacks=("lira_online", "rmia"), references=undefended)
    assert all(np.mean([metrics.roc_auc(member[t], sc[t]) for t in range(4)]) > 0.9 for sc in unaware.values())
    with pytest.raises(ValueError, match="other membership masks"):
        strong.attack_scores(grid(4, 0.0), references={**undefended, "member": membership_masks(n, 8, 1, block=4)})
