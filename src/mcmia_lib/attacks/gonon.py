"""The shadow-model attack of Gonon et al. (002, Sec. 2 and 4).

A discriminator sees, for an image x of class i, the one-hot class, the network's prediction R(x) (softmax
probabilities here; 002 says "prediction") and the robustness feature (1/ε)·E|R(x) − R(x + εN)| (N a standard
Gaussian in the network's normalised input space, the expectation a mean over ``draws`` samples). It is
trained on the shadow network's members vs non-members and attacks the target. 002 trains three perceptrons
(1, 2, 3 hidden layers of 30, 30, 100 ReLU units) with Adam for 80 epochs at three learning rates and reports
the strongest; the defense is D = 200 − 2A (``metrics.defense_score``). Features are standardised with the
shadow's statistics (002 does not say; unscaled, the robustness feature is ~1/ε larger than the rest).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import normalize
from .. import metrics


@dataclass(frozen=True)
class GononAttack:
    """Settings of 002's discriminators (defaults as printed in 002, Sec. 4; ``batch_size`` is ours)."""

    eps: float = 1e-3
    draws: int = 5
    hidden: tuple = ((30,), (30, 30), (100, 100, 100))
    lrs: tuple = (1e-2, 1e-3, 1e-4)
    epochs: int = 80
    batch_size: int = 256

    def __post_init__(self):
        if self.eps <= 0 or self.draws < 1 or self.epochs < 1:
            raise ValueError(f"eps must be > 0 and draws, epochs >= 1; got {self.eps}, {self.draws}, {self.epochs}")


@torch.no_grad()
def gonon_features(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, ds, cfg: GononAttack,
                   seed: int, batch_size: int = 1000) -> torch.Tensor:
    """(n, 3·classes) features: one-hot class, softmax prediction, robustness feature (002, Sec. 4)."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(x_uint8), batch_size):
        x = normalize(x_uint8[i:i + batch_size].to(device), ds.mean, ds.std)
        p = F.softmax(model(x), 1)
        rob = torch.zeros_like(p)
        for _ in range(cfg.draws):
            noise = torch.randn(x.shape, generator=gen).to(device)
            rob += (p - F.softmax(model(x + cfg.eps * noise), 1)).abs()
        onehot = F.one_hot(y[i:i + batch_size].to(device), p.shape[1]).float()
        out.append(torch.cat([onehot, p, rob / (cfg.draws * cfg.eps)], 1).cpu())
    return torch.cat(out)


def discriminator(n_in: int, hidden: tuple) -> nn.Sequential:
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, 1))


def _fit(x: torch.Tensor, y: torch.Tensor, hidden: tuple, lr: float, cfg: GononAttack, seed: int) -> nn.Sequential:
    """One discriminator trained with Adam on (x, y) for ``cfg.epochs``, seeded by ``seed``."""
    torch.manual_seed(seed)
    net = discriminator(x.shape[1], hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(perm), cfg.batch_size):
            b = perm[i:i + cfg.batch_size]
            loss = F.binary_cross_entropy_with_logits(net(x[b]).squeeze(1), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return net.eval()


def _scores(net: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return net(x).squeeze(1).numpy().astype(np.float64)


def gonon_attack(shadow_x: torch.Tensor, shadow_member: np.ndarray, target_x: torch.Tensor,
                 target_member: np.ndarray, cfg: GononAttack, seed: int) -> dict:
    """002's attack with the attacker's own choice of discriminator. Every discriminator (hidden sizes ×
    learning rates) is trained on one half of the shadow's members and non-members and scored on the other
    half (``metrics.stratified_halves``); the one with the best held-out accuracy is the attacker's choice.
    Every discriminator is then refitted on the whole shadow set and attacks the target. Returns the chosen
    one's target accuracy A, D = 200 − 2A, AUC and TPRs, its scores, each discriminator's accuracies, and,
    labelled ``oracle``, the best target accuracy over all of them (002's choice, which looks at the target's
    membership: an upper bound, not an attack)."""
    shadow_member = np.asarray(shadow_member, dtype=bool)
    mu, sd = shadow_x.mean(0), shadow_x.std(0).clamp_min(1e-8)
    xs, xt = (shadow_x - mu) / sd, (target_x - mu) / sd
    ys = torch.as_tensor(shadow_member, dtype=torch.float32)
    fit_half, select_half = metrics.stratified_halves(shadow_member, seed)
    runs = []
    for hidden in cfg.hidden:
        for lr in cfg.lrs:
            half = _fit(xs[fit_half], ys[fit_half], hidden, lr, cfg, seed)
            selection = metrics.attack_accuracy(shadow_member[select_half], _scores(half, xs[select_half]) >= 0)
            net = _fit(xs, ys, hidden, lr, cfg, seed)
            score = _scores(net, xt)
            runs.append({"hidden": list(hidden), "lr": lr, "selection_accuracy": selection,
                         "shadow_accuracy": metrics.attack_accuracy(shadow_member, _scores(net, xs) >= 0),
                         "accuracy": metrics.attack_accuracy(target_member, score >= 0), "score": score})
    chosen = max(runs, key=lambda r: r["selection_accuracy"])  # first of equals: the order of cfg
    oracle = max(runs, key=lambda r: r["accuracy"])
    return {"accuracy": chosen["accuracy"], "defense": float(metrics.defense_score(100 * chosen["accuracy"])),
            "best": {"hidden": chosen["hidden"], "lr": chosen["lr"]},
            **metrics.attack_report(target_member, chosen["score"]),
            "oracle": {"accuracy": oracle["accuracy"], "defense": float(metrics.defense_score(100 * oracle["accuracy"])),
                       "hidden": oracle["hidden"], "lr": oracle["lr"]},
            "discriminators": [{k: v for k, v in r.items() if k != "score"} for r in runs],
            "scores": chosen["score"]}
