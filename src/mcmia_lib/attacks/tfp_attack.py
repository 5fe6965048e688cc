"""The membership-inference test 004 (Lomurno & Matteucci, Sec. 4) ran: TensorFlow Privacy's black-box
attacks after Salem et al. — a threshold on the loss and a logistic regression trained on the model's
outputs — on the target's training set (members) against its test set (non-members), balanced by
subsampling the larger side, reporting the AUC of the more effective attack. Written from that
description; not TensorFlow Privacy's code.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from .. import metrics
from .threshold import score


def balanced(n_in: int, n_out: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of min(n_in, n_out) members and as many non-members, drawn without replacement."""
    rng = np.random.default_rng(seed)
    k = min(n_in, n_out)
    return np.sort(rng.choice(n_in, k, replace=False)), np.sort(rng.choice(n_out, k, replace=False))


def tfp_attack(logits_in: torch.Tensor, y_in: torch.Tensor, logits_out: torch.Tensor, y_out: torch.Tensor,
               seed: int = 0, test_size: float = 0.2) -> dict:
    """AUC of the threshold attack on the loss (all balanced examples) and of a logistic regression on
    [log-softmax outputs, loss] (trained on 1 − ``test_size`` of them, AUC on the rest); ``auc`` is the
    larger, ``best`` names it."""
    i, o = balanced(len(y_in), len(y_out), seed)
    logits = torch.cat([logits_in[i], logits_out[o]]).double()
    y = torch.cat([y_in[i], y_out[o]])
    member = np.r_[np.ones(len(i)), np.zeros(len(o))]
    loss_score = score("loss", logits, y)  # higher = lower loss = more member-like
    features = np.c_[torch.log_softmax(logits, 1).numpy(), -loss_score]
    tr, te = train_test_split(np.arange(len(member)), test_size=test_size, random_state=seed, stratify=member)
    lr = LogisticRegression(max_iter=1000).fit(features[tr], member[tr])
    out = {"threshold_auc": metrics.roc_auc(member, loss_score),
           "lr_auc": metrics.roc_auc(member[te], lr.predict_proba(features[te])[:, 1]), "n_per_side": len(i)}
    out["best"] = "threshold" if out["threshold_auc"] >= out["lr_auc"] else "lr"
    out["auc"] = max(out["threshold_auc"], out["lr_auc"])
    return out
