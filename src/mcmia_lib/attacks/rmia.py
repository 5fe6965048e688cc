"""RMIA, the relative membership inference attack of Zarifzadeh et al. (2024, "Low-cost high-power membership
inference attacks"), from stored probabilities of the target and of reference models.

For an example x, LR(x, z) = [Pr(x|θ) / Pr(x)] / [Pr(z|θ) / Pr(z)] compares it with population samples z
(non-members of the target); the score is the fraction of z ≠ x with LR(x, z) ≥ γ (their Eq. 4–5), ties
broken by the ratio Pr(x|θ)/Pr(x): out-of-distribution examples such as mislabeled canaries often exceed every
population sample, and a block of tied scores 1 would hide their order at low false-positive rates. Pr(x|θ) is
the target's probability of the true label (averaged over queries by the caller); Pr(x) the mean of the
reference models' probabilities, or offline, from OUT references only, ½[(1 + a)·Pr_OUT(x) + (1 − a)]
(their App. B.2.2), with ``a`` chosen on reference models, never on the target.
"""
from __future__ import annotations

import numpy as np


def marginal(ref_probs, ref_in, a: float | None = None, use=None) -> np.ndarray:
    """Pr(x) for each of the n examples from the reference models' probabilities (r, n) and which of them
    trained on each example (r, n): the mean over the references ``use`` (r, n) bool selects (default: all),
    or with ``a`` the offline approximation from the OUT ones."""
    p = np.asarray(ref_probs, dtype=np.float64)
    ref_in = np.asarray(ref_in, dtype=bool)
    use = np.ones_like(ref_in) if use is None else np.asarray(use, dtype=bool)
    if not p.shape == ref_in.shape == use.shape:
        raise ValueError(f"ref_probs is {p.shape}, ref_in {ref_in.shape}, use {use.shape}; all are (references, "
                         "examples)")
    if a is None:
        if use.sum(0).min() < 1:
            raise ValueError("RMIA needs at least one reference model per example")
        return (p * use).sum(0) / use.sum(0)
    out = ~ref_in & use
    if out.sum(0).min() < 1:
        raise ValueError("offline RMIA needs at least one OUT reference model per example")
    p_out = (p * out).sum(0) / out.sum(0)
    return 0.5 * ((1 + a) * p_out + (1 - a))


def rmia_scores(target_probs, ref_probs, ref_in, population, a: float | None = None, gamma: float = 1.0,
                use=None) -> np.ndarray:
    """Scores (n,), higher = member: for each example, the fraction of population samples z ≠ x whose likelihood
    ratio LR(x, z) ≥ ``gamma``; ``use`` as in ``marginal``. ``population``: indices into the n examples
    (non-members of the target), or a pair (the target's probabilities (h,), the references' (r, h)) on h
    samples from outside the pool, which no model trained on (Zarifzadeh et al.'s population data)."""
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    target = np.asarray(target_probs, dtype=np.float64)
    ratio = target / np.maximum(marginal(ref_probs, ref_in, a, use), 1e-30)
    in_pop = np.zeros(len(ratio), dtype=bool)
    if isinstance(population, tuple):
        pop_target, pop_refs = (np.asarray(x, dtype=np.float64) for x in population)
        z = np.sort(pop_target / np.maximum(marginal(pop_refs, np.zeros(pop_refs.shape, bool), a), 1e-30))
    else:
        population = np.asarray(population)
        z = np.sort(ratio[population])
        in_pop[population] = True
    if z.size < 2:
        raise ValueError("RMIA needs at least two population samples")
    # LR(x, z) >= gamma  <=>  ratio_z <= ratio_x / gamma
    count = np.searchsorted(z, ratio / gamma, side="right").astype(np.float64)
    count -= in_pop & (gamma <= 1)  # x itself, when it is one of the z (its own LR is 1)
    # Ties (every x whose ratio exceeds all population samples' scores 1) are broken by the ratio itself, which
    # orders the examples of one target as the score does; the term (< 1e-9) is below the score's resolution.
    return count / (z.size - in_pop) + 1e-9 * np.tanh(np.log(np.maximum(ratio, 1e-300)) / 4)
