"""A fast CIFAR-10 network for the CPU, in the spirit of airbench (Jordan 2024): a 3×3 stem, then three
blocks of (3×3 conv, 2×2 max-pool, norm, ReLU, 3×3 conv, norm, ReLU) at 32, 64 and 128 channels (× width),
a global max-pool and a linear head. The blocks are the network's ``stages`` (002's segments, for butterfly
convolutions). ``norm="batch"`` by default; ``"group"`` (GroupNorm, 8 channels a
group where the width allows) is the BatchNorm-free variant DP-SGD needs (per-example gradients)."""
from __future__ import annotations

from torch import nn

from .width import scaled

WIDTHS = (32, 64, 128)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    groups = max(1, channels // 8)
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


def fastnet(num_classes=10, in_shape=(3, 32, 32), width=1.0, norm: str = "batch", dropout: float = 0.0
            ) -> nn.Sequential:
    """``dropout`` > 0 (004's regularizer, Sec. 4: 20 %) adds dropout after each block and before the head."""
    if norm not in ("batch", "group"):
        raise ValueError(f"norm must be 'batch' or 'group', got {norm!r}")
    c = in_shape[0]
    stem = scaled(WIDTHS[0] // 2, width)
    drop = (lambda: [nn.Dropout(dropout)]) if dropout else (lambda: [])
    layers, prev, blocks = [nn.Conv2d(c, stem, 3, padding=1, bias=False), _norm(norm, stem), nn.ReLU()], stem, []
    for w in WIDTHS:
        w = scaled(w, width)
        blocks.append(nn.Sequential(nn.Conv2d(prev, w, 3, padding=1, bias=False), nn.MaxPool2d(2), _norm(norm, w),
                                    nn.ReLU(), nn.Conv2d(w, w, 3, padding=1, bias=False), _norm(norm, w), nn.ReLU(),
                                    *drop()))
        prev = w
    model = nn.Sequential(*layers, *blocks, nn.AdaptiveMaxPool2d(1), nn.Flatten(), *drop(),
                          nn.Linear(prev, num_classes))
    model.stages = blocks  # the segments that 002's butterfly convolutions replace (``butterfly_segments``)
    return model


def fastnet_gn(num_classes=10, in_shape=(3, 32, 32), width=1.0, dropout: float = 0.0) -> nn.Sequential:
    """``fastnet`` with GroupNorm: no batch statistics, so Opacus can clip per-example gradients."""
    return fastnet(num_classes, in_shape, width, norm="group", dropout=dropout)


def fastnet_parameters(num_classes: int, in_channels: int, width: float = 1.0) -> int:
    """Closed-form parameter count of ``fastnet`` (either norm: both have a scale and a shift per channel)."""
    stem = scaled(WIDTHS[0] // 2, width)
    total, prev = in_channels * stem * 9 + 2 * stem, stem
    for w in WIDTHS:
        w = scaled(w, width)
        total += prev * w * 9 + w * w * 9 + 2 * (2 * w)
        prev = w
    return total + prev * num_classes + num_classes
