"""LiRA, the likelihood-ratio attack of Carlini et al. (2022, "Membership inference attacks from first
principles"), from stored logits of the target and of reference models (nothing is retrained).

The statistic is the logit-scaled confidence φ = log(p_y / (1 − p_y)) = z_y − logsumexp_{j≠y} z_j (their
Eq. 4, computed from the logits so it stays finite when p_y rounds to 1). For each example and query
(the image, its flip) φ is modelled over the reference models as a Gaussian IN (trained on the example) and
OUT. Online: score = log N(φ; μ_in, σ_in) − log N(φ; μ_out, σ_out) (Sec. 4.2), averaged over queries.
Offline: the one-sided test against the OUT Gaussian, score = −log Pr[N(μ_out, σ_out) ≥ φ] (Sec. 4.3).
``fix_variance``: one standard deviation per side and query, pooled over examples (the root of the mean
within-example variance), which their Fig. 6 finds better with few reference models.
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm


def logit_confidence(logits, labels) -> np.ndarray:
    """φ = z_y − logsumexp_{j≠y} z_j for logits of shape (..., n, q, c) and labels (n,); returns (..., n, q)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.shape[-3] != y.shape[0]:
        raise ValueError(f"logits hold {z.shape[-3]} examples but labels {y.shape[0]}")
    is_true = np.arange(z.shape[-1]) == y[:, None, None]  # (n, 1, c), broadcast over queries
    true = np.where(is_true, z, 0.0).sum(-1)
    others = np.where(is_true, -np.inf, z)
    return true - logsumexp(others, axis=-1)


def _side(phi_ref, mask, fix_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of φ over the reference models selected by ``mask`` (r, n), per example and
    query: (n, q) each."""
    w = mask[:, :, None].astype(np.float64)
    count = w.sum(0)
    mean = (w * phi_ref).sum(0) / np.maximum(count, 1)
    var = (w * (phi_ref - mean) ** 2).sum(0) / np.maximum(count, 1)
    if fix_variance:
        return mean, np.broadcast_to(np.sqrt(var.mean(0, keepdims=True)), mean.shape)
    return mean, np.sqrt(var)


def lira_scores(target_logits, ref_logits, ref_in, labels, online: bool = True, fix_variance: bool = False,
                use=None) -> np.ndarray:
    """Membership scores (n,), higher = member, for the target's logits (n, q, c) given the reference models'
    logits (r, n, q, c), which examples each reference trained on (r, n) bool, and the labels (n,); ``use``
    (r, n) bool: the references each example's Gaussians are fitted on (default: all)."""
    return lira_from_confidence(logit_confidence(target_logits, labels), logit_confidence(ref_logits, labels),
                                ref_in, online, fix_variance, use)


def lira_from_confidence(phi, phi_ref, ref_in, online: bool = True, fix_variance: bool = False, use=None
                         ) -> np.ndarray:
    """``lira_scores`` from the logit-scaled confidences already computed: the target's (n, q) and the
    references' (r, n, q)."""
    ref_in = np.asarray(ref_in, dtype=bool)
    use = np.ones_like(ref_in) if use is None else np.asarray(use, dtype=bool)
    if use.shape != ref_in.shape:
        raise ValueError(f"use is {use.shape} but ref_in is {ref_in.shape}; both are (references, examples)")
    if phi_ref.shape[:2] != ref_in.shape:
        raise ValueError(f"ref_logits cover {phi_ref.shape[:2]} (references, examples) but ref_in is {ref_in.shape}")
    need = 1 if fix_variance else 2
    sides = [(~ref_in & use, "OUT")] + ([(ref_in & use, "IN")] if online else [])
    for mask, name in sides:
        if mask.sum(0).min() < need:
            raise ValueError(f"some example has fewer than {need} {name} reference model(s); use more references"
                             + ("" if fix_variance else " or fix_variance=True"))
    mu_out, sd_out = _side(phi_ref, ~ref_in & use, fix_variance)
    if not online:
        return -norm.logsf(phi, mu_out, sd_out + 1e-30).mean(-1)
    mu_in, sd_in = _side(phi_ref, ref_in & use, fix_variance)
    return (norm.logpdf(phi, mu_in, sd_in + 1e-30) - norm.logpdf(phi, mu_out, sd_out + 1e-30)).mean(-1)
