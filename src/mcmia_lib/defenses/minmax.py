"""Min-Max adversarial regularization (Nasr et al., CCS 2018) as used by 000/001 (Eq. 3 without the
cardinality constraint), as one training hook.

Before each classifier step the inference model h (the NN attack's architecture) takes ``attack_steps``
Adam steps maximising the gain G (Eq. 1) on a batch of members against a batch of the *reference set*
(non-members from the attacker-side half of the test set, never the evaluation half). The classifier's
loss then gets λ · (mean h(f(x), y) − 0.5) on its own batch: the member term of G, centred as in Nasr
et al.'s reference code, so the classifier is pushed to make its members look like non-members.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..attacks.nn_attack import NasrAttackNet, attack_features
from ..data import Dataset, normalize
from ..train import Hook


@dataclass(frozen=True)
class MinMax:
    """Min-Max settings: λ (``lam``), inference-model steps per classifier step, and the inference
    model's Adam learning rate (001, App. D: 1e-5)."""

    lam: float
    attack_steps: int = 1
    attack_lr: float = 1e-5

    def __post_init__(self):
        if self.lam < 0 or self.attack_steps < 1 or not self.attack_lr > 0:
            raise ValueError(f"need lam >= 0, attack_steps >= 1, attack_lr > 0; got {self}")


class MinMaxHook(Hook):
    def __init__(self, ds: Dataset, member_idx, reference_idx, cfg: MinMax, batch_size: int = 64, seed: int = 0):
        self.ds, self.lam, self.k, self.bs = ds, cfg.lam, cfg.attack_steps, batch_size
        self.members = torch.as_tensor(member_idx, dtype=torch.long)
        self.reference = torch.as_tensor(reference_idx, dtype=torch.long)
        self.gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):  # the adversary's initial weights depend on ``seed`` alone
            torch.manual_seed(seed)
            self.h = NasrAttackNet(ds.num_classes, init_std=None)  # PyTorch's init: N(0, 0.01) collapses (MNIST chapter)
        self.opt = torch.optim.Adam(self.h.parameters(), lr=cfg.attack_lr)
        self.gains: list[float] = []
        self.bf16 = False

    def configure(self, model, optimizer, cfg, n):
        """The adversary's view of the classifier runs in the classifier's precision (bf16 under ``cfg.bf16``)."""
        self.bf16 = bool(cfg.bf16)
        return model, optimizer

    def _batch(self, x_all, y_all, pool, device):
        i = pool[torch.randint(len(pool), (self.bs,), generator=self.gen)]
        return normalize(x_all[i].to(device), self.ds.mean, self.ds.std), y_all[i].to(device)

    def _attack_step(self, model):
        device = next(model.parameters()).device
        xm, ym = self._batch(self.ds.x_train, self.ds.y_train, self.members, device)
        xr, yr = self._batch(self.ds.x_test, self.ds.y_test, self.reference, device)
        model.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            lm, lr = model(xm).float(), model(xr).float()
        model.train()
        self.h.to(device)
        out = self.h(*attack_features(torch.cat([lm, lr]), torch.cat([ym, yr])))
        target = torch.cat([torch.ones(self.bs), torch.zeros(self.bs)]).to(device)
        loss = nn.functional.binary_cross_entropy_with_logits(out, target)  # = -G / 2 (Eq. 1, batch estimate)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.gains.append(-2 * loss.item())

    def extra_loss(self, model, x, y, logits):
        for _ in range(self.k):
            self._attack_step(model)
        for p in self.h.parameters():
            p.requires_grad_(False)
        member_score = torch.sigmoid(self.h(*attack_features(logits, y))).mean()
        for p in self.h.parameters():
            p.requires_grad_(True)
        return self.lam * (member_score - 0.5)

    def state_dict(self) -> dict:
        """The adversary, its optimizer, its batch stream and the epoch's gains: a resumed run continues them."""
        return {"h": self.h.state_dict(), "opt": self.opt.state_dict(), "gen": self.gen.get_state(),
                "gains": list(self.gains)}

    def load_state_dict(self, state: dict) -> None:
        self.h.load_state_dict(state["h"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.gains = list(state["gains"])

    def after_epoch(self, epoch, model, record):
        """Mean batch estimate of the gain G (Eq. 1) over the epoch's attack steps; −log 4 ≈ −1.386 is an
        inference model at chance (at its optimum G = −log 4 + 2·JS(P_D, P_D'), 001 Eq. 11)."""
        record["minmax_gain"] = sum(self.gains) / max(len(self.gains), 1)
        self.gains.clear()
