"""One training loop over resident tensors; defenses plug in as hooks (``Hook``) instead of forking the loop."""
from __future__ import annotations

import functools
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data import Dataset, augment, normalize
from .paths import atomic_write_bytes

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "step", "cosine", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run. ``schedule='step'`` divides the lr by 10 at 50% and 75%
    of training (002); ``'cosine'`` anneals it to zero. ``curve_subset``: the per-epoch curves (test
    loss/accuracy, leakage probe) use a fixed random subset of this many test images and evaluation
    examples instead of all of them (a cost knob; the final metrics always use every example).

    The fast recipe (issue 18; every option defaults to None = off, so stored keys do not move): ``nesterov``
    momentum for SGD; ``schedule='onecycle'``, set per step: a linear rise from lr/10 to lr over the first
    ``warmup`` fraction of the steps (default 0.25), then a linear fall to 0 at the last step;
    ``label_smoothing`` of the cross-entropy; ``decay_weights_only``: weight decay on conv and linear weights
    only, not on biases or norm parameters; ``channels_last`` memory format for the model and its batches;
    ``eval_flip``: logits averaged over the image and its horizontal flip wherever the trained model is
    evaluated (test curves, and the logits the attacks see); ``bf16``: mixed precision, the forward pass and
    the loss under bfloat16 autocast (weights, optimizer and evaluation stay fp32), fast on CPUs with AMX or
    AVX512-BF16 and on CUDA."""

    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "none"
    flip: bool = False
    crop_pad: int = 0
    curve_subset: int | None = None
    nesterov: bool | None = None
    warmup: float | None = None
    label_smoothing: float | None = None
    decay_weights_only: bool | None = None
    channels_last: bool | None = None
    eval_flip: bool | None = None
    bf16: bool | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.curve_subset is not None and self.curve_subset < 2:
            raise ValueError(f"curve_subset must be None (all examples) or >= 2, got {self.curve_subset}")
        if self.nesterov and (self.optimizer != "sgd" or not self.momentum > 0):
            raise ValueError("nesterov needs optimizer='sgd' with momentum > 0")
        if self.warmup is not None and (self.schedule != "onecycle" or not 0 < self.warmup < 1):
            raise ValueError(f"warmup is the one-cycle schedule's rising fraction in (0, 1), got {self.warmup} "
                             f"with schedule={self.schedule!r}")
        if self.label_smoothing is not None and not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


def quiet() -> bool:
    """Progress bars are off when ``CI`` or ``MCMIA_QUIET`` is set."""
    return bool(os.environ.get("CI") or os.environ.get("MCMIA_QUIET"))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if cfg.decay_weights_only:  # conv and linear weights are the parameters with more than one dimension
        params = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=bool(cfg.nesterov))


def lr_at_step(cfg: TrainConfig, step: int, total: int) -> float:
    """The one-cycle learning rate at optimizer step ``step`` (0-based) of ``total``."""
    rise = max(1, round((cfg.warmup or 0.25) * total))
    if step < rise:
        return cfg.lr * (0.1 + 0.9 * step / rise)
    fall = total - 1 - rise  # steps from the peak to the last step, where the rate reaches 0
    return cfg.lr * max(0.0, (total - 1 - step) / fall) if fall > 0 else 0.0


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate used during ``epoch`` (0-based); the one-cycle schedule is set per step (``lr_at_step``)."""
    if cfg.schedule == "step":
        return cfg.lr * (0.1 ** ((epoch >= 0.5 * cfg.epochs) + (epoch >= 0.75 * cfg.epochs)))
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * epoch / cfg.epochs)).item())
    return cfg.lr


@torch.no_grad()
def predict(model: torch.nn.Module, x_uint8: torch.Tensor, ds: Dataset, batch_size: int = 2048,
            flip_average: bool | None = False) -> torch.Tensor:
    """Logits of ``model`` (eval mode) for uint8 images, in batches, each moved to the model's device; the
    logits stay there. ``flip_average``: the mean of the logits of each image and of its horizontal flip."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device

    def logits(x):
        return (model(x) + model(x.flip(-1))) / 2 if flip_average else model(x)
    out = torch.cat([logits(normalize(x_uint8[i:i + batch_size].to(device), ds.mean, ds.std))
                     for i in range(0, len(x_uint8), batch_size)])
    model.train(was_training)
    return out


def curve_indices(n: int, subset: int | None) -> torch.Tensor:
    """Indices of the examples used for per-epoch curves: all ``n``, or a fixed random ``subset`` of them."""
    if subset is None or subset >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:subset].sort().values


def _evaluate(model, x, y, ds, flip_average) -> tuple[float, float]:
    logits = predict(model, x, ds, flip_average=flip_average)
    y = y.to(logits.device)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def load_checkpoint(path: Path, device) -> dict | None:
    """The checkpoint's state, or None when there is none; a checkpoint that does not load is moved aside
    to ``<path>.corrupt`` (named on stderr) and training starts over."""
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True, map_location=device)
    except Exception as exc:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        print(f"mcmia: checkpoint {path} does not load ({type(exc).__name__}); moved to {aside}, training "
              "starts over", file=sys.stderr)
        return None


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


class Hook:
    """The training-hook protocol: a defense overrides what it needs, every default does nothing.

    * ``configure(model, optimizer, cfg, n) -> (model, optimizer)`` before the first step, ``n`` being the
      number of training examples (swap the optimizer, wrap the model, e.g. Opacus's ``make_private``);
    * ``batches() -> iterable of index tensors``: the batches of one epoch instead of a shuffled partition
      (DP-SGD's Poisson sampling);
    * ``criterion(logits, y) -> loss`` instead of the mean cross-entropy (Opacus's ghost-clipping loss);
    * ``extra_loss(model, x, y, logits) -> Tensor`` added to the loss (Min-Max's λ·gain, ADMM's
      ρ/2‖W − Z + U‖²);
    * ``after_step(model)`` after each optimizer step (apply pruning masks);
    * ``after_epoch(epoch, model, record)`` at the end of each epoch (ADMM's Z/U updates, extra metrics);
    * ``close()`` after the last epoch (remove what ``configure`` attached);
    * ``state_dict()`` / ``load_state_dict(state)``: the hook's own state, saved with the checkpoint so that
      a resumed run continues it (``KeepBest``'s best weights so far).

    ``batches`` and ``criterion`` are supplied by at most one hook of a run (``train`` refuses two)."""

    def configure(self, model, optimizer, cfg: TrainConfig, n: int):
        return model, optimizer

    def batches(self):
        raise NotImplementedError

    def criterion(self, logits, y):
        raise NotImplementedError

    def extra_loss(self, model, x, y, logits):
        raise NotImplementedError

    def after_step(self, model) -> None:
        pass

    def after_epoch(self, epoch: int, model, record: dict) -> None:
        pass

    def close(self) -> None:
        pass

    def state_dict(self):
        raise NotImplementedError

    def load_state_dict(self, state) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Phase:
    """One training phase of a multi-phase defense: its name (tags the history), training settings, seed,
    and ``hooks(model)``, built when the phase starts (after the earlier phases trained or loaded the model)."""

    name: str
    cfg: TrainConfig
    seed: int
    hooks: Callable[[torch.nn.Module], list]


def supplies(hook: Hook, method: str) -> bool:
    """Whether ``hook``'s class overrides ``method`` of the protocol."""
    return getattr(type(hook), method) is not getattr(Hook, method)


def _check_hooks(hooks) -> list[Hook]:
    hooks = list(hooks)
    for h in hooks:
        if not isinstance(h, Hook):
            raise TypeError(f"{type(h).__name__} is not a training hook: subclass mcmia_lib.train.Hook (its "
                            "methods default to doing nothing)")
    for method in ("batches", "criterion"):
        owners = [type(h).__name__ for h in hooks if supplies(h, method)]
        if len(owners) > 1:
            raise ValueError(f"hooks {' and '.join(owners)} both supply the {method}; one run takes one")
    return hooks


def train(model: torch.nn.Module, ds: Dataset, train_idx, cfg: TrainConfig, seed: int, hooks=(),
          eval_test: bool = True, checkpoint: Path | None = None, desc: str = "train") -> list[dict]:
    """Train ``model`` in place on ``ds.x_train[train_idx]``; return one record per epoch
    (lr, train loss/acc as running means over the epoch, test loss/acc at the epoch's end, seconds of the
    optimisation steps alone and of the whole epoch with its evaluations).

    Deterministic for a given ``seed`` on a given device. With ``checkpoint``, the state is saved
    atomically after every epoch and a rerun resumes from it (loaded with ``weights_only=True``); the
    caller deletes it once the result is stored.
    """
    hooks = _check_hooks(hooks)
    stateful = [h for h in hooks if supplies(h, "state_dict")]
    adds_loss = [h for h in hooks if supplies(h, "extra_loss")]
    device = next(model.parameters()).device
    idx = torch.as_tensor(train_idx, dtype=torch.long, device=ds.x_train.device)
    x_all, y_all = ds.x_train[idx].to(device), ds.y_train[idx].to(device)
    n = len(idx)
    curve = curve_indices(len(ds.y_test), cfg.curve_subset)
    x_test, y_test = ds.x_test[curve], ds.y_test[curve]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed + 1)  # dropout and other global-RNG users
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    for h in hooks:
        model, optimizer = h.configure(model, optimizer, cfg, n)
    sampler = next((h for h in hooks if supplies(h, "batches")), None)
    hook_criterion = next((h.criterion for h in hooks if supplies(h, "criterion")), None)
    if hook_criterion is not None and cfg.label_smoothing:
        raise ValueError("label_smoothing cannot combine with a hook that supplies the criterion (DP-SGD's)")
    if hook_criterion is not None and cfg.bf16:
        raise ValueError("bf16 cannot combine with a hook that supplies the criterion (DP-SGD's per-example "
                         "clipping runs in fp32); drop bf16 from the training settings")
    criterion = hook_criterion or (functools.partial(F.cross_entropy, label_smoothing=cfg.label_smoothing)
                                   if cfg.label_smoothing else F.cross_entropy)
    steps_per_epoch = -(-n // cfg.batch_size)
    history, start_epoch = [], 0
    state = load_checkpoint(Path(checkpoint), device) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        history, start_epoch = state["history"], state["epoch"] + 1
        for h, hs in zip(stateful, state.get("hooks", [])):
            h.load_state_dict(hs)
    bar = tqdm(range(start_epoch, cfg.epochs), desc=desc, disable=quiet(), leave=False,
               initial=start_epoch, total=cfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        per_step = cfg.schedule == "onecycle"
        lr = lr_at_step(cfg, epoch * steps_per_epoch, cfg.epochs * steps_per_epoch) if per_step else lr_at(cfg, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        if sampler is None:
            perm = torch.randperm(n, generator=gen).to(device)
            batches = (perm[i:i + cfg.batch_size] for i in range(0, n, cfg.batch_size))
        else:
            batches = (b.to(device) for b in sampler.batches())
        tot_loss, tot_correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        for i, b in enumerate(batches):
            if per_step and i:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at_step(cfg, epoch * steps_per_epoch + i, cfg.epochs * steps_per_epoch)
            seen += len(b)
            x = normalize(x_all[b], ds.mean, ds.std)
            if cfg.flip or cfg.crop_pad:
                x = augment(x, cfg.flip, cfg.crop_pad, gen)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y_all[b]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(cfg.bf16)):
                logits = model(x)
                loss = criterion(logits, y)
            tot_loss += loss.detach() * len(b)
            tot_correct += (logits.detach().argmax(1) == y).sum()
            for h in adds_loss:
                loss = loss + h.extra_loss(model, x, y, logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for h in hooks:
                h.after_step(model)
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": tot_loss.item() / max(seen, 1),
                  "train_acc": tot_correct.item() / max(seen, 1), "step_seconds": time.perf_counter() - t0}
        if eval_test:
            record["test_loss"], record["test_acc"] = _evaluate(model, x_test, y_test, ds, cfg.eval_flip)
        for h in hooks:
            h.after_epoch(epoch, model, record)
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_acc']:.3f}",
                        test=f"{record.get('test_acc', float('nan')):.3f}")
        if checkpoint is not None:
            save_checkpoint(Path(checkpoint), {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "epoch": epoch,
                "hooks": [h.state_dict() for h in stateful]})
    for h in hooks:
        h.close()
    return history


class KeepBest(Hook):
    """Hook: the weights at the end of the epoch with the highest ``record[metric]`` (the per-epoch
    accuracy on the images ``train`` evaluates on); 002 stops at, and IMP rewinds to, the epoch of best
    validation accuracy (002, Sec. 4). ``restore(model)`` loads them."""

    def __init__(self, metric: str = "test_acc"):
        self.metric, self.best, self.epoch, self.weights = metric, float("-inf"), None, None

    def after_epoch(self, epoch, model, record):
        if record[self.metric] > self.best:
            self.best, self.epoch = record[self.metric], epoch + 1
            self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        record["best_epoch"] = self.epoch

    def state_dict(self) -> dict:
        return {"best": self.best, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.epoch, self.weights = state["best"], state["epoch"], state["weights"]

    def restore(self, model) -> int:
        """Load the best weights into ``model``; return their epoch (1-based)."""
        if self.weights is None:
            raise RuntimeError("KeepBest saw no epoch: train with it among the hooks first")
        model.load_state_dict(self.weights)
        return self.epoch
