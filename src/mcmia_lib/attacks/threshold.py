"""Threshold attacks on per-example scores computed from the target's logits (higher = member).

* ``loss``: −cross-entropy (Yeom et al. 2018);
* ``confidence``: probability of the true class (Salem et al. 2019);
* ``entropy``: −entropy of the prediction (Salem et al. 2019);
* ``modified_entropy``: −Mentr(p, y) with Mentr = −(1 − p_y) log p_y − Σ_{i≠y} p_i log(1 − p_i)
  (Song & Mittal 2021, Eq. 7).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import metrics

SCORES = ("loss", "confidence", "entropy", "modified_entropy")
_TINY = 1e-30


def score(kind: str, logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Membership score of each example (float64 numpy array), computed in float64 for stable tails."""
    if kind not in SCORES:
        raise ValueError(f"unknown score {kind!r}; choose one of {', '.join(SCORES)}")
    logits, labels = logits.double(), labels.long()
    logp = F.log_softmax(logits, 1)
    p = logp.exp()
    if kind == "loss":
        s = logp.gather(1, labels[:, None])[:, 0]
    elif kind == "confidence":
        s = p.gather(1, labels[:, None])[:, 0]
    elif kind == "entropy":
        s = (p * logp).sum(1)
    else:
        py, logpy = p.gather(1, labels[:, None])[:, 0], logp.gather(1, labels[:, None])[:, 0]
        p_log1m = p * torch.log1p(-p).clamp(min=np.log(_TINY))  # p_i log(1 - p_i), finite at p_i = 1
        others = p_log1m.sum(1) - p_log1m.gather(1, labels[:, None])[:, 0]
        s = (1 - py) * logpy + others  # = -Mentr
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
