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


def gonon_attack(shadow_x: torch.Tensor, shadow_member: np.ndarray, target_x: torch.Tensor,
                 target_member: np.ndarray, cfg: GononAttack, seed: int) -> dict:
    """Train every discriminator (hidden sizes × learning rates) on the shadow's features, evaluate each on
    the target's; return their accuracies, the strongest one's accuracy A (in %), D = 200 − 2A, and the
    strongest's AUC / TPR at low FPR with its scores."""
    mu, sd = shadow_x.mean(0), shadow_x.std(0).clamp_min(1e-8)
    xs, xt = (shadow_x - mu) / sd, (target_x - mu) / sd
    ys = torch.as_tensor(shadow_member, dtype=torch.float32)
    runs = []
    for hidden in cfg.hidden:
        for lr in cfg.lrs:
            torch.manual_seed(seed)
            net = discriminator(xs.shape[1], hidden)
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(cfg.epochs):
                perm = torch.randperm(len(xs), generator=gen)
                for i in range(0, len(perm), cfg.batch_size):
                    b = perm[i:i + cfg.batch_size]
                    loss = F.binary_cross_entropy_with_logits(net(xs[b]).squeeze(1), ys[b])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                score = net(xt).squeeze(1).numpy().astype(np.float64)
                shadow_acc = metrics.attack_accuracy(shadow_member, net(xs).squeeze(1).numpy() >= 0)
            runs.append({"hidden": list(hidden), "lr": lr, "shadow_accuracy": shadow_acc,
                         "accuracy": metrics.attack_accuracy(target_member, score >= 0), "score": score})
    best = max(runs, key=lambda r: r["accuracy"])
    a = 100 * best["accuracy"]
    return {"accuracy": best["accuracy"], "defense": float(metrics.defense_score(a)),
            "best": {"hidden": best["hidden"], "lr": best["lr"]},
            **metrics.attack_report(target_member, best["score"]),
            "discriminators": [{k: v for k, v in r.items() if k != "score"} for r in runs],
            "scores": best["score"]}
