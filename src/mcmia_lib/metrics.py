"""Attack and utility metrics, defined once (DESIGN.md, "Metrics, defined once").

All functions take ``is_member`` (1 = member, 0 = non-member) and a ``score`` where a higher score
means "more likely a member", in the style of ``sklearn.metrics``. Ties between a member and a
non-member score count as half (the ROC walks through tied scores as one diagonal step).
"""
from __future__ import annotations

import numpy as np


def _check(is_member, score):
    y = np.asarray(is_member).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"is_member has {y.size} entries but score has {s.size}; pass one score per example")
    if not np.all(np.isfinite(s)):
        raise ValueError("score contains NaN or infinite values; clip or drop them before computing metrics")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both members and non-members, got {n_pos} members and {n_neg} non-members")
    return y, s


def roc_curve(is_member, score):
    """ROC points ``(fpr, tpr, thresholds)``: one point per distinct score, from the highest down.

    Point ``i`` predicts "member" for ``score >= thresholds[i]``. The first point is (0, 0) with an
    infinite threshold. No point is dropped (unlike sklearn's ``drop_intermediate``).
    """
    y, s = _check(is_member, score)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(y)[last_of_run]
    fp = (last_of_run + 1) - tp
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (~y).sum()]
    return fpr, tpr, np.r_[np.inf, s[last_of_run]]


def roc_auc(is_member, score) -> float:
    """Area under the ROC (trapezoids, so ties count as half); equals P(member score > non-member) + ½ P(=)."""
    fpr, tpr, _ = roc_curve(is_member, score)
    return float(np.trapezoid(tpr, fpr))


def tpr_at_fpr(is_member, score, fpr: float) -> float:
    """Largest TPR among ROC points whose FPR <= ``fpr`` (no interpolation)."""
    return float(tpr_at_fprs(is_member, score, [fpr])[0])


def tpr_at_fprs(is_member, score, fprs) -> np.ndarray:
    """``tpr_at_fpr`` at each of ``fprs``, from one ROC (a curve on a grid of FPRs)."""
    x = np.asarray(fprs, dtype=float)
    if not np.all((0.0 <= x) & (x <= 1.0)):
        raise ValueError(f"fpr must be in [0, 1], got {x[(x < 0) | (x > 1) | np.isnan(x)].tolist()}")
    f, t, _ = roc_curve(is_member, score)  # both non-decreasing: the last point with FPR <= x has the largest TPR
    return t[np.searchsorted(f, x + 1e-12, side="right") - 1]


def min_resolvable_fpr(n_nonmembers: int) -> float:
    """Smallest non-zero FPR an evaluation set with ``n_nonmembers`` can show (one false positive)."""
    return 1.0 / n_nonmembers


def advantage(is_member, score) -> float:
    """Membership advantage: max over thresholds of TPR - FPR (Yeom et al. 2018)."""
    f, t, _ = roc_curve(is_member, score)
    return float(np.max(t - f))


def attack_accuracy(is_member, pred) -> float:
    """Fraction of correct member/non-member decisions; ``pred`` is boolean or 0/1."""
    y = np.asarray(is_member).astype(bool).ravel()
    p = np.asarray(pred).astype(bool).ravel()
    if y.shape != p.shape:
        raise ValueError(f"is_member has {y.size} entries but pred has {p.size}")
    return float(np.mean(y == p))


def best_threshold(is_member, score) -> float:
    """Threshold maximising balanced accuracy (TPR + TNR) / 2 of ``score >= threshold`` on a calibration
    set; balanced because the evaluation sets are, even when the calibration set is not."""
    fpr, tpr, thr = roc_curve(is_member, score)
    return float(thr[int(np.argmax(tpr - fpr))])


def stratified_halves(is_member, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of the indices of ``is_member``, each with half of the members and half of
    the non-members (an odd count leaves the extra one in the second half): fit or choose on one, report on
    the other, so that a reported number never saw its own selection."""
    y = np.asarray(is_member, dtype=bool)
    rng = np.random.default_rng([seed, 5])
    first, second = [], []
    for group in (np.flatnonzero(y), np.flatnonzero(~y)):
        g = rng.permutation(group)
        first.append(g[:len(g) // 2])
        second.append(g[len(g) // 2:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def defense_score(attack_acc_percent):
    """Gonon et al.'s defense score D = 200 - 2A, with A the attack accuracy in percent (002, Sec. 3)."""
    return 200.0 - 2.0 * np.asarray(attack_acc_percent, dtype=float)


def accuracy(labels, logits_or_pred) -> float:
    """Top-1 accuracy from class predictions or from a (n, classes) array of logits."""
    p = np.asarray(logits_or_pred)
    if p.ndim == 2:
        p = p.argmax(1)
    return float(np.mean(p == np.asarray(labels)))


def attack_report(is_member, score, fprs=(0.01, 0.001)) -> dict:
    """AUC, advantage and TPR at each FPR in ``fprs``; a TPR is NaN where the set cannot resolve that FPR."""
    y, s = _check(is_member, score)
    out = {"auc": roc_auc(y, s), "advantage": advantage(y, s)}
    floor = min_resolvable_fpr(int((~y).sum()))
    for x in fprs:
        out[f"tpr@{x:g}"] = tpr_at_fpr(y, s, x) if x >= floor else float("nan")
    return out


def inference_gain(is_member, prob) -> float:
    """Gain G of an inference model h on a balanced set (001 Eq. 1/8): mean log h over members plus
    mean log(1 − h) over non-members, in nats; ``prob`` is h's output in [0, 1] (clipped at 1e-12)."""
    y, p = _check(is_member, prob)
    if p.min() < 0 or p.max() > 1:
        raise ValueError("prob must be the inference model's probability in [0, 1], not a logit or score")
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(np.log(p[y]).mean() + np.log1p(-p[~y]).mean())


def js_lower_bound(gain: float) -> float:
    """JS(P_D ‖ P_D') >= (G + log 4) / 2 in nats, with equality for the optimal inference model (001 Eq. 10)."""
    return (gain + np.log(4.0)) / 2.0


def js_divergence(a, b, bins: int = 50) -> float:
    """Jensen–Shannon divergence (nats, in [0, log 2]) between the histograms of two 1-D samples over
    ``bins`` shared quantile bins of the pooled sample (ties fall in one bin)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("js_divergence needs two non-empty samples of finite values")
    edges = np.unique(np.quantile(np.r_[a, b], np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        return 0.0
    p = np.histogram(np.clip(a, edges[0], edges[-1]), edges)[0] / a.size
    q = np.histogram(np.clip(b, edges[0], edges[-1]), edges)[0] / b.size
    m = (p + q) / 2

    def kl(u):
        nz = u > 0
        return float(np.sum(u[nz] * np.log(u[nz] / m[nz])))
    return (kl(p) + kl(q)) / 2


def js_permutation_test(a, b, n_perm: int = 200, seed: int = 0, bins: int = 50) -> dict:
    """``js_divergence(a, b)`` beside its null distribution: the same estimate between random splits of the
    pooled sample into groups of the sizes of ``a`` and ``b`` (no membership signal), repeated ``n_perm``
    times. Returns the observed JS, the null's mean and 95th percentile (the estimator's floor at this sample
    size) and the permutation p-value (1 + #null >= observed) / (1 + n_perm)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    observed = js_divergence(a, b, bins)
    pool, rng = np.r_[a, b], np.random.default_rng(seed)
    null = np.empty(n_perm)
    for i in range(n_perm):
        perm = rng.permutation(pool)
        null[i] = js_divergence(perm[:a.size], perm[a.size:], bins)
    return {"js": observed, "null_mean": float(null.mean()), "null_95": float(np.quantile(null, 0.95)),
            "p_value": float((1 + np.sum(null >= observed)) / (1 + n_perm))}


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) over seeds."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def line_slope(x, y, level: float = 0.95) -> tuple[float, float, float]:
    """Least-squares slope b of y = a + b·x and its ``level`` confidence interval from the t-distribution with
    n − 2 degrees of freedom: the line of 002's Figure 1 (defense points per accuracy point)."""
    from scipy.stats import linregress, t as student
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or len(x) < 3 or np.ptp(x) == 0:
        raise ValueError(f"need at least 3 paired points with different x, got {len(x)} x and {len(y)} y")
    fit = linregress(x, y)
    half = student.ppf(0.5 + level / 2, len(x) - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)


# -- strong-attack metrics (issue 19): intervals at low FPR, a bootstrap over target models, empirical ε ------

def clopper_pearson(k, n, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided ``level`` interval for a binomial proportion with ``k`` successes in ``n`` trials."""
    from scipy.stats import beta
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    alpha = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def tpr_at_fpr_ci(is_member, score, fpr: float, level: float = 0.95) -> tuple[float, float, float]:
    """TPR at ``fpr`` (as ``tpr_at_fpr``) with a Clopper–Pearson interval over the members; (NaN, NaN, NaN)
    when fewer than 10 non-members would lie above the threshold (n_out · fpr < 10): one false positive does
    not resolve an FPR."""
    y, s = _check(is_member, score)
    n_in, n_out = int(y.sum()), int((~y).sum())
    if n_out * fpr < 10:
        return float("nan"), float("nan"), float("nan")
    tpr = tpr_at_fpr(y, s, fpr)
    return (tpr, *clopper_pearson(round(tpr * n_in), n_in, level))


def target_bootstrap(is_member, score, metric, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                     ) -> tuple[float, float, float]:
    """``metric(is_member, score)`` on all target models pooled, with a percentile interval from resampling the
    targets (rows of the (targets, examples) arrays) with replacement: the targets are the unit, not the
    examples. Resamples where the metric is NaN are dropped."""
    y, s = np.asarray(is_member), np.asarray(score, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"is_member and score must both be (targets, examples), got {y.shape} and {s.shape}")
    rng = np.random.default_rng(seed)
    value = float(metric(y.ravel(), s.ravel()))
    boot = np.array([metric(y[i].ravel(), s[i].ravel()) for i in rng.integers(0, len(y), (n_boot, len(y)))])
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return value, float("nan"), float("nan")
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return value, float(lo), float(hi)


def roc_bootstrap(is_member, score, fprs=(), n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """AUC and TPR at each of ``fprs`` (NaN where ``tpr_at_fpr_ci`` would be) on all targets pooled, each with
    the percentile interval of ``target_bootstrap`` (the same resamples for the same seed), in one pass per
    resample: the pooled scores are sorted once and a resample only reweights them (a target drawn k times
    weighs k). Returns {"auc": (value, lo, hi), f: (value, lo, hi) for f in fprs}."""
    y, s = np.asarray(is_member).astype(bool), np.asarray(score, dtype=np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"is_member and score must both be (targets, examples), got {y.shape} and {s.shape}")
    _check(y, s)
    order = np.argsort(-s.ravel(), kind="mergesort")
    ys = y.ravel()[order]
    targets = np.repeat(np.arange(len(y)), y.shape[1])[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s.ravel()[order])), ys.size - 1]

    def values(weights):
        w = weights[targets]
        tp, fp = np.cumsum(w * ys)[last_of_run], np.cumsum(w * ~ys)[last_of_run]
        if tp[-1] == 0 or fp[-1] == 0:
            return [float("nan")] * (1 + len(fprs))
        tpr, fpr = np.r_[0.0, tp / tp[-1]], np.r_[0.0, fp / fp[-1]]
        return [float(np.trapezoid(tpr, fpr))] + [float(tpr[fpr <= f + 1e-12].max()) if fp[-1] * f >= 10
                                                  else float("nan") for f in fprs]

    point = values(np.ones(len(y)))
    rng = np.random.default_rng(seed)
    boot = np.array([values(np.bincount(i, minlength=len(y)).astype(np.float64))
                     for i in rng.integers(0, len(y), (n_boot, len(y)))])
    out = {}
    for j, name in enumerate(["auc", *fprs]):
        b = boot[:, j][np.isfinite(boot[:, j])]
        lo, hi = np.quantile(b, [(1 - level) / 2, (1 + level) / 2]) if b.size else (np.nan, np.nan)
        out[name] = (point[j], float(lo), float(hi))
    return out
