"""Threshold attacks on per-example scores computed from the target's logits (higher = member).

* ``loss``: −cross-entropy of the true label (Yeom et al. 2018);
* ``confidence``: probability p_y of the true label (Salem et al. 2019), scored through its logit
  log(p_y / (1 − p_y)) as LiRA does (Carlini et al. 2022): same ranking, but confidences that round
  to 1 in floating point stay ordered;
* ``entropy``: −entropy of the prediction (Salem et al. 2019);
* ``modified_entropy``: −Mentr(p, y) with Mentr = −(1 − p_y) log p_y − Σ_{i≠y} p_i log(1 − p_i)
  (Song & Mittal 2021, Eq. 7).

A well-fitted model predicts its members with p_y within 1e-16 of 1, where ``log_softmax`` returns
exactly 0 and every such example would tie. All scores are therefore computed in float64 from
L = log Σ_{j≠y} exp(z_j − z_y): log p_y = −softplus(L), 1 − p_y = −expm1(log p_y), logit(p_y) = −L.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import metrics

SCORES = ("loss", "confidence", "entropy", "modified_entropy")


def score(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Membership score of each example (float64 numpy array)."""
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r}; choose one of {', '.join(SCORES)}")
    z, y = logits.double(), labels.long()[:, None]
    rel = (z - z.gather(1, y)).scatter(1, y, float("-inf"))
    big_l = torch.logsumexp(rel, 1)  # log of (1 - p_y) / p_y
    logpy = -F.softplus(big_l)
    if kind == "loss":
        s = logpy
    elif kind == "confidence":
        s = -big_l
    else:
        logp = F.log_softmax(z, 1).scatter(1, y, logpy[:, None])
        p = logp.exp()
        if kind == "entropy":
            s = (p * logp).sum(1)
        else:
            p_log1m = p * torch.log1p(-p.clamp(max=1 - 1e-16))  # p_i log(1 - p_i); the y term is removed below
            others = p_log1m.sum(1) - p_log1m.gather(1, y)[:, 0]
            s = -torch.expm1(logpy) * logpy + others  # = −Mentr
    return s.cpu().numpy()


def threshold_attack(calib_member, calib_score, eval_member, eval_score) -> dict:
    """Pick the threshold on the calibration set (never on the evaluation set), apply it to the evaluation
    set; report its accuracy plus AUC / advantage / TPR@FPR and the *oracle* accuracy (best threshold
    chosen on the evaluation set itself, labelled so)."""
    thr = metrics.best_threshold(calib_member, calib_score)
    out = metrics.attack_report(eval_member, eval_score)
    out["threshold"] = thr
    out["accuracy"] = metrics.attack_accuracy(eval_member, np.asarray(eval_score) >= thr)
    out["oracle_accuracy"] = metrics.attack_accuracy(
        eval_member, np.asarray(eval_score) >= metrics.best_threshold(eval_member, eval_score))
    return out
