"""Model inversion as in 004 (Lomurno & Matteucci, Sec. 4, Figs. 2–3): the trained target is cut after one of
its layers and frozen; a decoder (SiLU hidden activations, sigmoid output with the input's channels, MSE,
Adam 1e-3) learns to reconstruct the input image from that layer's output. The reconstruction MSE on the
test set measures how much of the input the layer gives away (lower = better for the attacker); "Prediction"
is the black-box case (the softmax output).

004 prints no decoder sizes: ours maps the layer output to 32 channels (a dense layer to a (32, H/4, W/4)
map for vectors, a 1×1 convolution for maps), doubles the resolution with nearest upsampling + 3×3
convolution blocks until it is the image's, then a 3×3 convolution and the 3×3 output convolution. Every
hidden convolution is followed by batch normalization: without it the decoder of MNIST's Conv3 output settled
on an all-black image from the second epoch on (test MSE 0.114 against 0.068 for the mean image; with it
0.015 after four epochs), and its saturated sigmoid filled the gradients with denormal floats (3× slower on
CPU; ``_fit`` flushes denormals to zero while it runs).

The attacker trains on a seeded random draw of the target's members (member indices are sorted and the
CIFAR-10 JPEG copy is ordered by class, so a prefix would hold two classes), for at most ``epochs`` (004: 20)
and keeps the epoch of lowest MSE on ``n_val`` other members (stopping after ``patience`` epochs without
improvement); its state is checkpointed after every epoch, so an interrupted fit resumes where it stopped. It
is evaluated on the test set, as 004's Table 4 reports test-set scores, next to the MSE of
predicting the mean training image: a decoder that does not beat it has learnt nothing from the layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import engine
from .data import normalize
from .runner import ExperimentSpec, data_and_split, trained_model
from .weights import weights_path
from .store import TRAINING_COMPONENTS
from .train import curve_indices, load_checkpoint, quiet, save_checkpoint

LAYERS = ("Conv1", "MaxPool1", "Conv2", "MaxPool2", "Conv3", "MaxPool3", "Dense", "Prediction")


def cut_points(model: nn.Sequential) -> dict[str, int]:
    """Index (inclusive) of the last module of each of 004's layers in the Sequential ``lomurno_cnn``:
    a conv layer ends at its ReLU (Keras's activation), the dense layer at its ReLU."""
    kinds = [type(m).__name__ for m in model]
    relus = [i for i, k in enumerate(kinds) if k == "ReLU"]
    pools = [i for i, k in enumerate(kinds) if k == "MaxPool2d"]
    if len(relus) != 4 or len(pools) != 3 or kinds[-1] != "Linear":
        raise ValueError("model inversion per 004's layers needs the lomurno_cnn architecture "
                         "(three conv + max-pool blocks, a dense layer, the prediction layer)")
    points = [relus[0], pools[0], relus[1], pools[1], relus[2], pools[2], relus[3], len(kinds) - 1]
    return dict(zip(LAYERS, points))


class Prefix(nn.Module):
    """The frozen target up to ``layer`` (softmax applied after the prediction layer)."""

    def __init__(self, target: nn.Sequential, layer: str):
        super().__init__()
        self.body = target[:cut_points(target)[layer] + 1].eval()
        self.softmax = layer == "Prediction"
        for p in self.body.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.body.eval()  # dropout stays off: the attacker queries the deployed model
        return self

    @torch.no_grad()
    def forward(self, x):
        out = self.body(x)
        return out.softmax(1) if self.softmax else out


def _conv_block(width: int) -> list[nn.Module]:
    return [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.SiLU()]


class Decoder(nn.Module):
    """Layer output -> image in [0, 1] (see the module docstring)."""

    def __init__(self, feature_shape: tuple, image_shape: tuple, width: int = 32):
        super().__init__()
        c, h, w = image_shape
        if len(feature_shape) == 1:
            size = (max(1, h // 4), max(1, w // 4))
            layers = [nn.Linear(feature_shape[0], width * size[0] * size[1]), nn.SiLU(), nn.Unflatten(1, (width, *size))]
        else:
            size = tuple(feature_shape[1:])
            layers = [nn.Conv2d(feature_shape[0], width, 1), nn.BatchNorm2d(width), nn.SiLU()]
        while size[0] < h or size[1] < w:
            size = (min(2 * size[0], h), min(2 * size[1], w))
            layers += [nn.Upsample(size=size), *_conv_block(width)]
        layers += [*_conv_block(width), nn.Conv2d(width, c, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


@dataclass(frozen=True)
class InversionSpec:
    """One inversion attack: the target's spec, the layer, and the decoder's training budget."""

    target: ExperimentSpec
    layer: str
    epochs: int = 20
    n_train: int | None = None  # decoder training images: a random draw of the target's members (None: all but n_val)
    n_val: int = 500  # other members on which the epoch of lowest MSE is chosen
    patience: int = 3  # stop after this many epochs without a lower validation MSE
    batch_size: int = 128
    lr: float = 1e-3
    n_test: int | None = None  # test images for the MSE: a fixed random subset of this many (None: all)
    n_examples: int = 8  # test reconstructions kept for figures
    code_version: int = 3  # 2: random member draw, validation-chosen epoch, mean-image MSE; 3: batch norm

    def __post_init__(self):
        if self.layer not in LAYERS:
            raise ValueError(f"unknown layer {self.layer!r}; choose one of {', '.join(LAYERS)}")
        if self.epochs < 1 or self.batch_size < 1 or self.n_val < 1 or self.patience < 1:
            raise ValueError(f"epochs, batch_size, n_val and patience must be >= 1; got {self.epochs}, "
                             f"{self.batch_size}, {self.n_val}, {self.patience}")


def _images(ds, x_uint8, device):
    x_uint8 = x_uint8.to(device)
    return normalize(x_uint8, ds.mean, ds.std), x_uint8.float() / 255


def decoder_members(members: np.ndarray, n_train: int | None, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random draw of (``n_train`` training, ``n_val`` validation) members, disjoint; ``n_train``
    None takes every member not drawn for validation."""
    n_train = len(members) - n_val if n_train is None else n_train
    if n_train < 1 or n_train + n_val > len(members):
        raise ValueError(f"the target has {len(members)} members: cannot draw {n_train} decoder training and "
                         f"{n_val} validation images; lower inversion_n_train or n_val")
    draw = np.random.default_rng([seed, 4]).permutation(members)
    return draw[:n_train], draw[n_train:n_train + n_val]


def _mse(decoder, prefix, ds, x_uint8, device) -> tuple[float, torch.Tensor]:
    """Mean squared error of the reconstructions of ``x_uint8`` (pixels in [0, 1]) and the first batch's output."""
    se, first = 0.0, None
    with torch.no_grad():
        for i in range(0, len(x_uint8), 1000):
            x, target_img = _images(ds, x_uint8[i:i + 1000], device)
            out = decoder(prefix(x))
            se += F.mse_loss(out, target_img, reduction="sum").item()
            first = out if first is None else first
    return se / x_uint8.numel(), first


def _fit(spec: InversionSpec, device: torch.device, past_corrupt: bool = False) -> tuple[dict, dict]:
    flush = torch.set_flush_denormal(True)  # False where the CPU cannot (then nothing changed)
    try:
        return _fit_decoder(spec, device)
    finally:
        if flush:
            torch.set_flush_denormal(False)


def _fit_decoder(spec: InversionSpec, device: torch.device) -> tuple[dict, dict]:
    ds, split = data_and_split(spec.target)
    target = trained_model(spec.target, device)
    prefix = Prefix(target, spec.layer)
    train_idx, val_idx = decoder_members(split.target_train, spec.n_train, spec.n_val, spec.target.seed)
    x_train, x_val = ds.x_train[torch.as_tensor(train_idx)], ds.x_train[torch.as_tensor(val_idx)]
    torch.manual_seed(spec.target.seed)
    with torch.no_grad():
        feature_shape = tuple(prefix(_images(ds, x_train[:2], device)[0]).shape[1:])
    decoder = Decoder(feature_shape, ds.shape).to(device)
    opt = torch.optim.Adam(decoder.parameters(), lr=spec.lr)
    gen = torch.Generator().manual_seed(spec.target.seed)
    history, best, best_state, best_epoch = [], float("inf"), None, 0
    ckpt = weights_path(engine.key(spec)).with_suffix(".ckpt")  # after every epoch: an interrupted fit resumes
    state = load_checkpoint(ckpt, device)
    if state is not None:
        decoder.load_state_dict(state["decoder"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        history, best = state["history"], state["best"]
        best_state, best_epoch = state["best_state"], state["best_epoch"]
    for epoch in tqdm(range(len(history), spec.epochs), desc=f"inversion {spec.layer}", disable=quiet(),
                      leave=False, initial=len(history), total=spec.epochs):
        if epoch - best_epoch >= spec.patience:
            break
        decoder.train()
        perm, tot = torch.randperm(len(x_train), generator=gen), 0.0
        for i in range(0, len(perm), spec.batch_size):
            x, target_img = _images(ds, x_train[perm[i:i + spec.batch_size]], device)
            loss = F.mse_loss(decoder(prefix(x)), target_img)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot += loss.item() * len(x)
        decoder.eval()
        val_mse = _mse(decoder, prefix, ds, x_val, device)[0]
        history.append({"epoch": epoch + 1, "train_mse": tot / len(perm), "val_mse": val_mse})
        if val_mse < best:
            best, best_epoch = val_mse, epoch + 1
            best_state = {k: v.clone() for k, v in decoder.state_dict().items()}
        save_checkpoint(ckpt, {"decoder": decoder.state_dict(), "optimizer": opt.state_dict(),
                               "generator": gen.get_state(), "history": history, "best": best,
                               "best_state": best_state, "best_epoch": best_epoch})
    decoder.load_state_dict(best_state)
    decoder.eval()
    x_test = ds.x_test[curve_indices(len(ds.y_test), spec.n_test)]
    test_mse, first = _mse(decoder, prefix, ds, x_test, device)
    mean_image = (x_train.float() / 255).mean(0)
    baseline = float(((x_test.float() / 255 - mean_image) ** 2).mean())
    result = {"test_mse": test_mse, "mean_image_mse": baseline, "best_epoch": best_epoch,
              "epochs_run": len(history), "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(x_test),
              "history": history, "feature_shape": list(feature_shape)}
    recon = (first[:spec.n_examples] * 255).round().to(torch.uint8).cpu()
    ckpt.unlink(missing_ok=True)
    return result, {"reconstructions": recon.numpy(), "originals": x_test[:spec.n_examples].numpy()}


engine.register(InversionSpec, "inv-", TRAINING_COMPONENTS, _fit, lambda spec: engine.phases(spec.target))
