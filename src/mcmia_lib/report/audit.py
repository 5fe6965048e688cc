"""Empirical ε from one training run (Steinke, Nasr & Jagielski 2023, "Privacy auditing with one (1) training
run"): many canaries per run, each a member or not, and an auditor that guesses membership for the canaries it
is most confident about and abstains on the others. Under (ε, δ)-DP the number of correct guesses is dominated
by a Binomial(r, e^ε / (1 + e^ε)) plus a δ term (their Theorem 3.3), so v correct guesses out of r reject every
ε whose p-value is below 1 − level. Unlike a Clopper–Pearson bound on pooled counts, it is valid for many
canaries in one run.

The leave-one-out grids put each canary in a random half of the models; for one target, its canaries'
membership is a random balanced subset, which the theorem (independent inclusion with probability ½) treats
as independent, and the auditor's scores come from reference models whose memberships are tied to the
target's by that half-and-half design (LiRA and RMIA draw as many IN as OUT references per example, which
removes the count signal but not the dependence). Both are approximations, stated beside every bound. A black-box audit of
the final model bounds ε from below only: a bound far below the accountant's ε says that this attack on this
model does not find the worst case, not that the training run is more private than accounted (Nasr et al.
2021: final-model audits are loose; the tight ones insert gradient canaries).
"""
from __future__ import annotations

import math

import numpy as np


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """P[at least v of r guesses correct] under (ε, δ)-DP for m canaries (Steinke et al. 2023, Theorem 3.3):
    P[Binomial(r, q) ≥ v] + 2 m δ · max_{1 ≤ i ≤ v} P[v − i ≤ Binomial(r, q) < v] / i, q = e^ε / (1 + e^ε)."""
    from scipy.stats import binom
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    q = 1 / (1 + math.exp(-eps))
    tail = binom.sf(v - 1, r, q)
    below = np.cumsum(binom.pmf(np.arange(v - 1, -1, -1), r, q))  # P[v − i <= Bin < v], i = 1 .. v
    alpha = float(np.max(below / np.arange(1, v + 1))) if v > 0 else 0.0
    return float(min(1.0, tail + 2 * m * delta * alpha))


def epsilon_lower_bound(m: int, r: int, v: int, delta: float = 1e-5, level: float = 0.95) -> float:
    """The largest ε that v correct guesses of r (m canaries) reject at ``level`` (p-value below 1 − level): a
    ``level`` lower confidence bound on the run's ε; 0 when even ε = 0 is not rejected. Bisection on ε."""
    beta = 1 - level
    if r == 0 or p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < beta:
        lo, hi = hi, 2 * hi
        if hi > 1000:
            return float("inf")
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_value(m, r, v, mid, delta) < beta else (lo, mid)
    return lo


def largest_certifiable(m: int, delta: float = 1e-5, level: float = 0.95) -> float:
    """The bound a perfect auditor reaches with m canaries (every canary guessed, every guess right): no audit of
    this design can certify more, so an accountant's ε above it cannot be checked from above by it."""
    return epsilon_lower_bound(m, m, m, delta, level)


def guesses(member: np.ndarray, score: np.ndarray, k_in: int, k_out: int) -> tuple[int, int]:
    """(r, v): guess "member" for the ``k_in`` highest scores and "non-member" for the ``k_out`` lowest, abstain
    on the rest; v counts the right guesses."""
    order = np.argsort(score, kind="stable")
    k_in, k_out = min(k_in, len(order)), min(k_out, len(order) - min(k_in, len(order)))
    top, bottom = order[len(order) - k_in:], order[:k_out]
    return k_in + k_out, int(member[top].sum() + (~member[bottom]).sum())


def one_run_audit(scores: dict, member: np.ndarray, canary: np.ndarray, delta: float = 1e-5,
                  level: float = 0.95, fractions=(0.02, 0.05, 0.1, 0.2, 0.3, 0.5), seed: int = 0) -> dict:
    """Each target audited as one run on its canaries. The attack and the numbers of guesses (a fraction of the
    canaries guessed "member" from the top and as many "non-member" from the bottom, or only from the top) are
    chosen on half of the targets, by their median bound; the other half's targets are each bounded with that
    choice. ``scores[attack]``: (targets, examples); ``member``: same shape; ``canary``: the canary columns.
    Returns the per-target bounds of the counted half and their (r, v), their median and range, the choice, and
    the largest ε the design can certify (``largest_certifiable``)."""
    n_targets, m = member.shape[0], int(canary.sum())
    if n_targets < 2 or m == 0:
        raise ValueError("need at least two targets and at least one canary")
    perm = np.random.default_rng([seed, 11]).permutation(n_targets)
    choose, count = perm[: n_targets // 2], perm[n_targets // 2:]
    options = [(int(round(f * m)), k_out) for f in fractions for k_out in (0, int(round(f * m)))]

    def bounds(attack, k_in, k_out, rows):
        s = scores[attack]
        return [epsilon_lower_bound(m, *guesses(member[t, canary], s[t, canary], k_in, k_out), delta, level)
                for t in rows]
    complete = [a for a, s in scores.items() if np.all(np.isfinite(s))]
    best = max(((a, k_in, k_out) for a in complete for k_in, k_out in options if k_in > 0),
               key=lambda c: (np.median(bounds(*c, choose)), -c[1] - c[2]))
    counted = bounds(*best, count)
    made = [guesses(member[t, canary], scores[best[0]][t, canary], best[1], best[2]) for t in count]
    return {"attack": best[0], "guess_in": best[1], "guess_out": best[2], "canaries": m, "bounds": counted,
            "guesses": made,
            "median": float(np.median(counted)), "min": float(np.min(counted)), "max": float(np.max(counted)),
            "largest_certifiable": largest_certifiable(m, delta, level), "targets_counted": len(count)}
