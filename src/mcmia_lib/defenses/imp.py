"""Iterative magnitude pruning (IMP) with rewinding, as in Gonon et al. (002, Sec. 3.1 and 4), after Frankle &
Carbin: train; rewind to the epoch of best validation accuracy; remove the smallest-magnitude 20% of the
remaining weights over the whole network; retrain with the pruned weights held at zero (``MaskHook``);
repeat. After k prunings about 100·0.8^k % of the prunable weights are left.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..train import KeepBest, Phase, TrainConfig
from .pruning import MaskHook, prunable


@dataclass(frozen=True)
class IMP:
    """``prunings`` rounds of IMP, each keeping ``keep`` of the weights the previous round left (002: 0.8)."""

    prunings: int
    keep: float = 0.8

    def __post_init__(self):
        if self.prunings < 0:
            raise ValueError(f"prunings must be >= 0 (0 is the dense network), got {self.prunings}")
        if not 0 < self.keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {self.keep} (002 keeps 0.8 per pruning)")

    def phases(self, cfg: TrainConfig, seed: int) -> list[Phase]:
        """Round 0 trains the dense network; round k prunes the network round k − 1 rewound to (global
        magnitude over the weights still alive) and retrains it masked. Every round trains with ``cfg`` and
        seed ``seed + 10·k`` and ends at its best-validation epoch (its ``KeepBest`` hook, last in the list)."""
        def round_hooks(k):
            def hooks(model):
                if k == 0:
                    return [KeepBest()]
                masks = global_magnitude_masks(model, self.keep, [w.detach() != 0 for _, w in prunable(model)])
                mask = MaskHook(masks)
                mask.after_step(model)
                return [mask, KeepBest()]
            return hooks
        return [Phase("train" if k == 0 else f"imp{k}", cfg, seed + 10 * k, round_hooks(k))
                for k in range(self.prunings + 1)]


def global_magnitude_masks(model: nn.Module, keep: float, masks: list[torch.Tensor] | None = None
                           ) -> list[torch.Tensor]:
    """Masks (one per ``prunable`` layer) keeping exactly round(``keep`` · n) of the n weights still
    unpruned under ``masks`` (all, if None): those of largest magnitude over all layers together. Pruned
    weights stay pruned."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep} (002 keeps 0.8 per pruning)")
    weights = [w.detach() for _, w in prunable(model)]
    masks = masks or [torch.ones_like(w, dtype=torch.bool) for w in weights]
    if [m.shape for m in masks] != [w.shape for w in weights]:
        raise ValueError("masks do not match the model's prunable layers")
    alive = torch.cat([w.abs().flatten()[m.flatten().bool()] for w, m in zip(weights, masks)])
    n_keep = round(keep * len(alive))
    magnitudes = torch.cat([torch.where(m.bool(), w.abs(), torch.full_like(w, -1.0)).flatten()
                            for w, m in zip(weights, masks)])
    kept = torch.zeros_like(magnitudes, dtype=torch.bool)
    kept[torch.topk(magnitudes, n_keep, sorted=False).indices] = True
    out, start = [], 0
    for w in weights:
        out.append(kept[start:start + w.numel()].reshape(w.shape).to(w.dtype))
        start += w.numel()
    return out


def nonzero_fraction(model: nn.Module, total: int | None = None) -> float:
    """Nonzero parameters of ``model`` over ``total`` (default: its own parameter count); 002 Table 1's
    "% of nonzero params" divides by the dense network's count, also for butterfly networks."""
    params = list(model.parameters())
    return sum(int(torch.count_nonzero(p)) for p in params) / (total or sum(p.numel() for p in params))
