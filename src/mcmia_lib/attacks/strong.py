"""The strong attacks on a leave-one-out grid (``loo.py``): every model in turn is the target and the others its
reference models; the attacks read stored logits only.

``grid_arrays`` stacks a configuration's entries; ``attack_scores`` gives each attack's (targets, examples)
scores; ``attack_summary`` their AUC and TPR at low FPR for the clean examples and for the canaries, with a
bootstrap over target models and Clopper–Pearson intervals; ``strongest_attack`` the attack chosen on each half
of the targets. The empirical ε from the canaries is ``report.audit`` (one-run audits of each target).
"""
from __future__ import annotations

import numpy as np

from .. import metrics
from .lira import lira_from_confidence, logit_confidence
from .rmia import rmia_scores

ATTACKS = ("threshold", "lira_online", "lira_offline", "lira_fixed_variance", "rmia", "rmia_offline")
RMIA_A = tuple(np.round(np.linspace(0, 1, 11), 1))  # offline RMIA's candidates for a


def grid_arrays(entries) -> dict:
    """The stored arrays of one configuration's models, stacked: logits (M, n, q, c), or φ (M, n, q) for compact
    entries, as float64, member (M, n), and the pool's canary mask and labels (n,), which all entries share."""
    if len(entries) < 2:
        raise ValueError(f"need the entries of at least two models of one grid, got {len(entries)}")
    labels = entries[0].arrays["label"]
    if any(not np.array_equal(e.arrays["label"], labels) for e in entries):
        raise ValueError("the entries come from different pools; stack the models of one Pool")
    out = {"member": np.stack([e.arrays["member"] for e in entries]).astype(bool),
           "canary": entries[0].arrays["canary"].astype(bool), "label": labels.astype(np.int64)}
    kind = "phi" if "phi" in entries[0].arrays else "logits"  # ``compact`` entries keep φ alone (loo.PoolModelSpec)
    out[kind] = np.stack([e.arrays[kind] for e in entries]).astype(np.float64)
    if "holdout_phi" in entries[0].arrays:  # outputs on test images outside the pool: RMIA's population
        out["holdout_phi"] = np.stack([e.arrays["holdout_phi"] for e in entries]).astype(np.float64)
    return out


def _sigmoid_mean(phi: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-phi))).mean(-1)


def statistics(g: dict) -> tuple[np.ndarray, np.ndarray]:
    """(φ (M, n, q), p_y averaged over queries (M, n)) of a grid: from its stored φ (p_y = sigmoid φ, since φ =
    log p_y − log(1 − p_y)) or from its logits."""
    if "phi" in g:
        phi = np.asarray(g["phi"], dtype=np.float64)
        return phi, _sigmoid_mean(phi)
    return logit_confidence(g["logits"], g["label"]), _true_prob(g["logits"], g["label"])


def _true_prob(logits, labels) -> np.ndarray:
    """Probability of the (pool) label, averaged over queries: logits (..., n, q, c) -> (..., n)."""
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    is_true = np.arange(z.shape[-1]) == labels[:, None, None]
    return np.where(is_true, p, 0.0).sum(-1).mean(-1)


def reference_use(ref_in: np.ndarray, rng: np.random.Generator, n_refs: int | None = None) -> np.ndarray:
    """The references (r, n) bool each example is attacked with: per example ``n_refs`` // 2 models that trained
    on it (IN) and as many that did not (OUT), drawn at random (an odd count's extra model on a side chosen by a
    fair coin); by default (None) as many of each side as the smaller side has. In a grid where every example is
    a member of exactly half of the M models, an example has M/2 − 1 IN references when it is a member of the
    target and M/2 when it is not: unequal counts would tell membership by themselves, and bias LiRA's
    likelihood ratio (the side fitted on fewer models has the noisier mean, which the ratio penalises) and
    RMIA's Pr(x). A composition drawn independently of the target, as an attacker's reference models trained on
    random halves of the data would have, removes both."""
    ref_in = np.asarray(ref_in, dtype=bool)
    cap = np.minimum(ref_in.sum(0), (~ref_in).sum(0))
    if n_refs is None:
        k_in = k_out = cap
    else:
        if n_refs < 1 or n_refs // 2 + n_refs % 2 > cap.min():
            raise ValueError(f"n_refs={n_refs}: some example has only {cap.min()} reference model(s) on its smaller "
                             f"side (IN or OUT); choose 1 <= n_refs <= {2 * cap.min()}")
        k_in = n_refs // 2 + (n_refs % 2) * (rng.random(ref_in.shape[1]) < 0.5)
        k_out = n_refs - k_in
    keys = rng.random(ref_in.shape)
    use = np.zeros_like(ref_in)
    for side, k in ((ref_in, k_in), (~ref_in, k_out)):
        rank = np.where(side, keys, np.inf).argsort(0).argsort(0)  # order within the side, random
        use |= side & (rank < k)
    return use


def choose_rmia_a(g: dict, refs: np.ndarray, seed: int = 0, probs: np.ndarray | None = None) -> float:
    """Offline RMIA's ``a``: the candidate whose attack on one reference model (the others as its references,
    as many IN as OUT per example, ``reference_use``) has the highest AUC; the target is never looked at.
    ``probs``: the models' true-label probabilities (M, n), when already computed."""
    pseudo, others = refs[0], refs[1:]
    probs = statistics(g)[1] if probs is None else probs
    if "holdout_phi" in g:
        held = _sigmoid_mean(g["holdout_phi"])
        population = (held[pseudo], held[others])
    else:
        population = np.flatnonzero(~g["member"][pseudo])
    use = reference_use(g["member"][others], np.random.default_rng([seed, 7]))
    auc = [metrics.roc_auc(g["member"][pseudo], rmia_scores(probs[pseudo], probs[others], g["member"][others],
                                                           population, a=a, use=use)) for a in RMIA_A]
    return float(RMIA_A[int(np.argmax(auc))])


def attack_scores(g: dict, attacks=ATTACKS, n_refs: int | None = None, seed: int = 0,
                  references: dict | None = None) -> dict[str, np.ndarray]:
    """Each attack's scores (M, n), higher = member: model m is the target, the others its reference models,
    of which each example is attacked with ``n_refs``, half IN and half OUT (``reference_use``; by default
    M − 2 with exact-half masks), the same for every attack. An attack that the references cannot support
    (e.g. LiRA online with fewer than two IN references per example) gives NaN rows. ``references``: the
    ``grid_arrays`` of another configuration on the same pool whose models serve as the references (a
    defense-unaware attacker: undefended references for a defended target; DESIGN.md); by default the target's
    own configuration (defense-aware). It may hold more models than the target's grid (the undefended blocks of
    ``loo.Pool.block``): its first models must share the target grid's masks, and model m's twin (same members)
    is never a reference of target m. RMIA's population: the grid's outputs on held-out test images where it
    stored them (``holdout_phi``), else the target's own non-members of the pool."""
    unknown = set(attacks) - set(ATTACKS)
    if unknown:
        raise ValueError(f"unknown attacks {sorted(unknown)}; choose from {ATTACKS}")
    m_models = len(g["member"])
    rng = np.random.default_rng(seed)
    r = g if references is None else references
    if not (len(r["member"]) >= m_models and np.array_equal(r["member"][:m_models], g["member"])
            and np.array_equal(r["label"], g["label"])):
        raise ValueError("the reference grid has other membership masks or labels: build both from one Pool")
    (phi, probs), (ref_phi, ref_probs) = statistics(g), statistics(r)  # (M, n, q), (M, n)
    holdout = "holdout_phi" in g and "holdout_phi" in r
    if holdout:
        pop_probs, ref_pop_probs = _sigmoid_mean(g["holdout_phi"]), _sigmoid_mean(r["holdout_phi"])
    out = {a: np.full(g["member"].shape, np.nan) for a in attacks}
    for t in range(m_models):
        refs = np.delete(np.arange(len(r["member"])), t)
        ref_in = r["member"][refs]
        use = reference_use(ref_in, rng, n_refs)
        population = (pop_probs[t], ref_pop_probs[refs]) if holdout else np.flatnonzero(~g["member"][t])
        for a in attacks:
            try:
                if a == "threshold":
                    s = phi[t].mean(-1)
                elif a.startswith("lira"):
                    s = lira_from_confidence(phi[t], ref_phi[refs], ref_in, online=a != "lira_offline",
                                             fix_variance=a == "lira_fixed_variance", use=use)
                else:
                    s = rmia_scores(probs[t], ref_probs[refs], ref_in, population,
                                    a=choose_rmia_a(r, refs, seed, ref_probs) if a == "rmia_offline" else None, use=use)
            except ValueError:  # too few IN or OUT references for this attack
                continue
            out[a][t] = s
    return out


FPRS = (0.01, 0.001, 0.0001)


def attack_summary(scores: dict[str, np.ndarray], member: np.ndarray, canary: np.ndarray, n_boot: int = 300,
                   level: float = 0.95) -> list[dict]:
    """Per attack and subset (clean examples, canaries: each its own members and non-members, so a threshold
    at an FPR is set on the subset's own non-members): AUC and TPR at each FPR of ``FPRS``, on all targets
    pooled, with a bootstrap interval over the targets and a Clopper–Pearson interval over the members (NaN
    where the subset cannot resolve the FPR)."""
    rows = []
    for attack, s in scores.items():
        ok = np.all(np.isfinite(s), axis=1)
        if not ok.any():
            continue
        for subset, cols in (("clean", ~canary), ("canaries", canary)):
            if not cols.any():
                continue
            y, x = member[ok][:, cols], s[ok][:, cols]
            row = {"attack": attack, "subset": subset, "targets": int(ok.sum()),
                   "members": int(y.sum()), "non-members": int((~y).sum())}
            boot = metrics.roc_bootstrap(y, x, FPRS, n_boot, level)
            row["auc"], row["auc_lo"], row["auc_hi"] = boot["auc"]
            for f in FPRS:
                tpr, lo, hi = metrics.tpr_at_fpr_ci(y.ravel(), x.ravel(), f, level)
                row[f"tpr@{f:g}"], row[f"tpr@{f:g}_lo"], row[f"tpr@{f:g}_hi"] = tpr, lo, hi
                if np.isfinite(tpr):
                    row[f"tpr@{f:g}_boot_lo"], row[f"tpr@{f:g}_boot_hi"] = boot[f][1:]
            rows.append(row)
    return rows


def _halves(ok: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng([seed, 11]).permutation(ok)
    return perm[: len(perm) // 2], perm[len(perm) // 2:]


def _complete(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The attacks that scored every target."""
    out = {a: s for a, s in scores.items() if np.all(np.isfinite(s))}
    if not out:
        raise ValueError("no attack has finite scores for every target")
    return out


def strongest_attack(scores: dict[str, np.ndarray], member: np.ndarray, fpr: float = 0.001, seed: int = 0,
                     columns: np.ndarray | None = None) -> dict:
    """The attack with the highest TPR at ``fpr`` on the examples of ``columns`` (all when None), chosen on each
    half of the target models (a seeded split) and so confirmed on targets that did not choose it; when the
    halves disagree, the attack whose lower of the two halves' TPRs is highest. Returns {"attack", "half_a",
    "half_b", "agree"}."""
    scores = _complete(scores)
    cols = slice(None) if columns is None else columns
    a_half, b_half = _halves(np.arange(len(member)), seed)
    tpr = {a: [metrics.tpr_at_fpr(member[h][:, cols].ravel(), s[h][:, cols].ravel(), fpr) for h in (a_half, b_half)]
           for a, s in scores.items()}
    best_a, best_b = (max(tpr, key=lambda a, i=i: tpr[a][i]) for i in (0, 1))
    attack = best_a if best_a == best_b else max(tpr, key=lambda a: min(tpr[a]))
    return {"attack": attack, "half_a": best_a, "half_b": best_b, "agree": best_a == best_b}
