"""The classic regularizers 004 (Lomurno & Matteucci, Sec. 5) sets against DP-SGD: an L2 penalty on the
prediction layer's weights (2e-2) and dropout (20%, a model setting: ``build_model(..., dropout=)``)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..train import Hook


@dataclass(frozen=True)
class Regularization:
    """``l2_last``: weight of λ·‖W‖² on the last Linear layer's weight matrix (Keras's ``l2(λ)``, as 004
    used); ``dropout``: the dropout rate of the model's dropout layers. ``None`` = not used."""

    l2_last: float | None = None
    dropout: float | None = None

    def __post_init__(self):
        if self.l2_last is None and self.dropout is None:
            raise ValueError("Regularization needs l2_last (e.g. 0.02) and/or dropout (e.g. 0.2)")
        if self.l2_last is not None and self.l2_last < 0:
            raise ValueError(f"l2_last must be >= 0, got {self.l2_last}")


def last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear layer to put the L2 penalty on")
    return linears[-1]


class L2LastLayerHook(Hook):
    """Adds λ·‖W_pred‖² (sum of squares, not halved) to the loss."""

    def __init__(self, weight: float):
        self.weight = weight

    def extra_loss(self, model, x, y, logits):
        return self.weight * last_linear(model).weight.pow(2).sum()
