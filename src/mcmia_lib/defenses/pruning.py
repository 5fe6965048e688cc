"""Weight pruning as training hooks: per-layer magnitude masks, the ADMM phase of MCMIA pruning
(001, App. B, Eq. 26–29, after Zhang et al. 2018), and masked retraining.

The "layers" of per-layer pruning rates are the weights of the Conv and Linear modules in definition
order (biases and BatchNorm parameters are not pruned), e.g. LeNet-5's five layers with 001's rates
(0.4, 0.9, 0.9375, 0.9375, 0.9375).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..train import Hook, Phase, TrainConfig


def prunable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, weight) of every Conv/Linear layer, in definition order."""
    return [(f"{name}.weight", m.weight) for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def check_rates(model: nn.Module, rates) -> list[float]:
    layers = prunable(model)
    rates = [float(r) for r in rates]
    if len(rates) != len(layers):
        names = ", ".join(n for n, _ in layers)
        raise ValueError(f"{type(model).__name__} has {len(layers)} prunable layers ({names}); got {len(rates)} rates")
    bad = [r for r in rates if not 0.0 <= r < 1.0]
    if bad:
        raise ValueError(f"pruning rates must be in [0, 1), got {bad}")
    return rates


def is_depthwise(module: nn.Module) -> bool:
    """A depthwise convolution: one filter per input channel (MobileNetV2's 3×3 layers)."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def rates_for_compression(model: nn.Module, compression: float, first_rate: float = 0.35,
                          depthwise_rate: float | None = None) -> list[float]:
    """Per-layer rates following 001 App. E's rule — the first layer pruned at ``first_rate`` (30–40%), every
    other layer at one common rate (50–95%) — with that rate chosen so that all conv/linear weights shrink by
    ``compression`` (e.g. 000 Table V's ratio for the model). ``depthwise_rate``, if given, is the rate of the
    depthwise layers instead (a 3×3 depthwise filter has only 9 weights). Rates are rounded to 4 decimals."""
    modules = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    fixed = {0: first_rate}
    if depthwise_rate is not None:
        fixed.update({i: depthwise_rate for i, m in enumerate(modules) if i and is_depthwise(m)})
    sizes = [m.weight.numel() for m in modules]
    total = sum(sizes)
    kept_fixed = sum(sizes[i] * (1 - r) for i, r in fixed.items())
    free = total - sum(sizes[i] for i in fixed)
    other = 1 - (total / compression - kept_fixed) / free
    if not 0.0 <= other < 1.0:
        raise ValueError(f"compression {compression}× with the first layer at {first_rate} (depthwise layers at "
                         f"{depthwise_rate}) needs the other layers pruned at {other:.4f}, outside [0, 1); choose a "
                         f"compression between {total / (kept_fixed + free):.2f}× and {total / kept_fixed:.0f}×")
    return [fixed.get(i, round(other, 4)) for i in range(len(sizes))]


def n_keep(numel: int, rate: float) -> int:
    """Number of weights kept in a layer of ``numel`` weights pruned at ``rate`` (rounded)."""
    return numel - int(round(rate * numel))


def magnitude_mask(w: torch.Tensor, rate: float) -> torch.Tensor:
    """Boolean mask keeping exactly ``n_keep(w.numel(), rate)`` largest-magnitude entries of ``w``."""
    keep = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
    keep[torch.topk(w.detach().abs().flatten(), n_keep(w.numel(), rate)).indices] = True
    return keep.view_as(w)


def project(w: torch.Tensor, rate: float) -> torch.Tensor:
    """Euclidean projection onto {card(Z) <= n_i}: keep the largest-magnitude entries (001, Eq. 29)."""
    return w * magnitude_mask(w, rate)


class ADMMHook(Hook):
    """The ADMM phase: the loss gets Σ_i ρ/2 ‖W_i − Z_i + U_i‖² (Eq. 26); after every epoch
    Z_i ← Π(W_i + U_i) (Eq. 27b, 29), U_i ← U_i + W_i − Z_i (Eq. 27c), and ρ ← ρ · ``rho_growth``
    (the increasing-ρ schedule of Zhang et al. 2018). Records the relative residual ‖W − Z‖² / ‖W‖²."""

    def __init__(self, model: nn.Module, rates, rho: float, rho_growth: float = 1.0):
        self.rates = check_rates(model, rates)
        self.rho, self.rho_growth = rho, rho_growth
        with torch.no_grad():
            self.Z = [project(w, r) for (_, w), r in zip(prunable(model), self.rates)]
            self.U = [torch.zeros_like(w) for _, w in prunable(model)]

    def state_dict(self) -> dict:
        """Z, U and ρ: a resumed ADMM phase continues the same iterates."""
        return {"Z": [z.clone() for z in self.Z], "U": [u.clone() for u in self.U], "rho": self.rho}

    def load_state_dict(self, state: dict) -> None:
        self.Z = [z.clone() for z in state["Z"]]
        self.U = [u.clone() for u in state["U"]]
        self.rho = state["rho"]

    def extra_loss(self, model, x, y, logits):
        return sum(0.5 * self.rho * (w - z + u).pow(2).sum()
                   for (_, w), z, u in zip(prunable(model), self.Z, self.U))

    @torch.no_grad()
    def after_epoch(self, epoch, model, record):
        num = den = 0.0
        for i, ((_, w), r) in enumerate(zip(prunable(model), self.rates)):
            self.Z[i] = project(w + self.U[i], r)
            self.U[i] += w - self.Z[i]
            num += (w - self.Z[i]).pow(2).sum().item()
            den += w.pow(2).sum().item()
        record["admm_rho"] = self.rho
        record["admm_residual"] = num / max(den, 1e-30)
        self.rho *= self.rho_growth


class MaskHook(Hook):
    """Masked retraining: after every optimizer step, W ← W ⊙ M, so pruned weights stay exactly zero."""

    def __init__(self, masks: list[torch.Tensor]):
        self.masks = masks

    @torch.no_grad()
    def after_step(self, model):
        for (_, w), m in zip(prunable(model), self.masks):
            w.mul_(m)


def hard_prune(model: nn.Module, rates) -> list[torch.Tensor]:
    """Zero all but the largest-magnitude weights of each layer; return the masks."""
    rates = check_rates(model, rates)
    masks = [magnitude_mask(w, r) for (_, w), r in zip(prunable(model), rates)]
    MaskHook(masks).after_step(model)
    return masks


def sparsity_report(model: nn.Module) -> list[dict]:
    """Per layer: weights, nonzero weights, and the fraction pruned (from the weights themselves)."""
    return [{"layer": name, "weights": w.numel(), "nonzero": int(torch.count_nonzero(w)),
             "pruned": 1 - int(torch.count_nonzero(w)) / w.numel()} for name, w in prunable(model)]


@dataclass(frozen=True)
class ADMMPruning:
    """MCMIA pruning of 001 (App. B, C, E): the undefended target is the pretrained model; then
    ``admm_epochs`` with the ADMM hook (ρ growing by ``rho_growth`` per epoch), hard pruning to
    ``rates`` (one per prunable layer), and ``retrain_epochs`` of masked retraining. ``lr`` None keeps
    the target's learning rate."""

    rates: tuple
    admm_epochs: int
    retrain_epochs: int
    rho: float = 1e-3
    rho_growth: float = 1.0
    lr: float | None = None

    def phases(self, cfg: TrainConfig, seed: int, retrain_hooks=()) -> list[Phase]:
        """The phases after pretraining: ADMM, then hard pruning and masked retraining (``retrain_hooks``
        train beside the mask: 000's Pruning & Min-Max)."""
        lr = self.lr or cfg.lr
        return [Phase("admm", replace(cfg, epochs=self.admm_epochs, lr=lr), seed + 1,
                      lambda m: [ADMMHook(m, self.rates, self.rho, self.rho_growth)]),
                Phase("retrain", replace(cfg, epochs=self.retrain_epochs, lr=lr), seed + 2,
                      lambda m: [MaskHook(hard_prune(m, self.rates)), *retrain_hooks])]

    def __post_init__(self):
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        if self.admm_epochs < 1 or self.retrain_epochs < 1:
            raise ValueError("admm_epochs and retrain_epochs must be >= 1")
        if self.rho < 0 or self.rho_growth <= 0:
            raise ValueError(f"need rho >= 0 and rho_growth > 0, got {self.rho}, {self.rho_growth}")
