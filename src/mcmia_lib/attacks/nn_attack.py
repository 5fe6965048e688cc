"""The NN attack of 000 (Sec. V-B) and 001 (App. D), after Nasr et al. (CCS 2018).

Two first-level branches — the target's prediction vector sorted in decreasing order through layers
of [1024, 512, 64] units, the one-hot label through [512, 64] — are concatenated and passed through
[256, 64, 1]; ReLU everywhere, weights drawn from N(0, 0.01), biases zero, Adam with lr 1e-3, sigmoid
output = P(member). The papers print the first sizes as "[100, ...]": the input width, i.e. the number
of classes of CIFAR-100; here it is the number of classes of the dataset at hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import metrics
from ..train import quiet


@dataclass(frozen=True)
class NNAttackConfig:
    """Training of the NN attack: ``epochs`` passes over the non-member set D' paired with as many members
    of D drawn afresh each epoch (balanced batches, as Nasr et al.), batch 64 (001, App. D)."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    init: str = "normal"  # "normal": N(0, init_std) as printed; "default": PyTorch's Kaiming-uniform
    init_std: float = 0.01

    def __post_init__(self):
        if self.init not in ("normal", "default"):
            raise ValueError(f"init must be 'normal' (N(0, init_std), as printed) or 'default', got {self.init!r}")


def _mlp(sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return layers


class NasrAttackNet(nn.Module):
    def __init__(self, num_classes: int, init_std: float | None = 0.01):
        super().__init__()
        self.features = nn.Sequential(*_mlp([num_classes, 1024, 512, 64]))
        self.labels = nn.Sequential(*_mlp([num_classes, 512, 64]))
        self.combine = nn.Sequential(*_mlp([128, 256, 64]), nn.Linear(64, 1))
        for m in self.modules():
            if init_std is not None and isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, init_std)
                nn.init.zeros_(m.bias)

    def forward(self, probs_sorted, onehot):
        """Logit of P(member)."""
        return self.combine(torch.cat([self.features(probs_sorted), self.labels(onehot)], 1))[:, 0]


def attack_features(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax sorted in decreasing order, one-hot label), the two inputs of the NN attack."""
    probs = torch.softmax(logits.float(), 1).sort(1, descending=True).values
    return probs, nn.functional.one_hot(labels.long(), logits.shape[1]).float()


@torch.no_grad()
def _scores(net, feats) -> np.ndarray:
    net.eval()
    out = torch.sigmoid(net(*feats)).cpu().numpy().astype(np.float64)
    net.train()
    return out


def train_nn_attack(in_logits, in_labels, out_logits, out_labels, eval_logits, eval_labels, eval_member,
                    cfg: NNAttackConfig, seed: int, desc: str = "nn attack") -> dict:
    """Train on members ``in_*`` (D) vs non-members ``out_*`` (D'); return the final attack's evaluation
    scores, its accuracy at the 0.5 decision threshold (the attack's own decision; no threshold is picked
    on the evaluation set), AUC / TPR@FPR, and per-epoch training loss and evaluation accuracy (the
    lower row of Figure 2 in 000)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    k = in_logits.shape[1]
    net = NasrAttackNet(k, cfg.init_std if cfg.init == "normal" else None)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    f_in, f_out = attack_features(in_logits, in_labels), attack_features(out_logits, out_labels)
    f_eval = attack_features(eval_logits, eval_labels)
    n = min(len(in_labels), len(out_labels))
    history = []
    for epoch in tqdm(range(cfg.epochs), desc=desc, disable=quiet(), leave=False):
        pick_in = torch.randperm(len(in_labels), generator=gen)[:n]
        pick_out = torch.randperm(len(out_labels), generator=gen)[:n]
        p = torch.cat([f_in[0][pick_in], f_out[0][pick_out]])
        o = torch.cat([f_in[1][pick_in], f_out[1][pick_out]])
        y = torch.cat([torch.ones(n), torch.zeros(n)])
        order = torch.randperm(2 * n, generator=gen)
        total = 0.0
        for i in range(0, 2 * n, cfg.batch_size):
            b = order[i:i + cfg.batch_size]
            loss = nn.functional.binary_cross_entropy_with_logits(net(p[b], o[b]), y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        s = _scores(net, f_eval)
        history.append({"epoch": epoch + 1, "train_loss": total / (2 * n),
                        "eval_accuracy": metrics.attack_accuracy(eval_member, s >= 0.5)})
    s = _scores(net, f_eval)
    out = metrics.attack_report(eval_member, s)
    out.update(accuracy=metrics.attack_accuracy(eval_member, s >= 0.5), collapsed=bool(np.ptp(s) < 1e-6),
               history=history)
    return {"metrics": out, "scores": s}
