"""Defenses as training hooks and declared phases: ADMM pruning, IMP, Min-Max, DP-SGD, L2 and dropout."""
from __future__ import annotations


def defense_hooks(regularization, dp) -> list:
    """The training hooks of L2 on the prediction layer (004, ``regularization``) and of DP-SGD (``dp``); dropout
    is in the model."""
    from .dp import DPHook
    from .regularization import L2LastLayerHook
    return (([L2LastLayerHook(regularization.l2_last)] if regularization and regularization.l2_last else [])
            + ([DPHook(dp)] if dp else []))
