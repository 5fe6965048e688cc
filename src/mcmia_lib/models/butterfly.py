"""Deformable butterfly (DeBut) convolutions (Lin et al., NeurIPS 2021), as used by Gonon et al. (002, Sec. 3.2).

A 3x3 convolution's weight matrix W (c_out x c_in*9) is the product F_1 ... F_L of L sparse factors. Factor l
has the support I_a ⊗ 1_{b x c} ⊗ I_d (size a*b*d x a*c*d, a*b*c*d free entries). Chaining the factors
(a_1 = 1, a_{l+1} = a_l c_l, d_l = b_{l+1} d_{l+1}, d_L = 1) makes c_out = b_1 ... b_L and c_in*9 = c_1 ... c_L,
and the product's support is full. 002 takes, for each layer, the *monotone* chain (the sizes c_in*9 =
n_L >= ... >= n_1 = c_out met between the factors never grow) with the fewest parameters, every factor
non-trivial (b_l, c_l >= 2); with that rule ResNet-20's parameter fractions are those of 002's Table 1.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F


def _ordered_factorizations(x: int, parts: int, smallest: int = 2):
    """All tuples of ``parts`` integers >= ``smallest`` whose product is ``x``."""
    if parts == 1:
        if x >= smallest:
            yield (x,)
        return
    for f in range(smallest, x + 1):
        if x % f == 0:
            for rest in _ordered_factorizations(x // f, parts - 1, smallest):
                yield (f, *rest)


def chain_factors(b: tuple, c: tuple) -> list[tuple[int, int, int, int]]:
    """The (a, b, c, d) of each factor of the chain with row splits ``b`` and column splits ``c``."""
    n = len(b)
    return [(math.prod(c[:i]), b[i], c[i], math.prod(b[i + 1:])) for i in range(n)]


@lru_cache(maxsize=None)
def debut_chain(rows: int, cols: int, n_factors: int) -> tuple[tuple[int, int, int, int], ...]:
    """The monotone DeBut chain of ``n_factors`` non-trivial factors with the fewest parameters for a
    ``rows`` x ``cols`` matrix (``rows <= cols``), as (a, b, c, d) per factor, left to right. Ties go to the
    lexicographically first (b, c)."""
    if n_factors < 1:
        raise ValueError(f"n_factors must be >= 1, got {n_factors}")
    if rows > cols:
        raise ValueError(f"a monotone (shrinking) chain needs rows <= cols, got {rows} x {cols}")
    best = None
    for b in _ordered_factorizations(rows, n_factors):
        for c in _ordered_factorizations(cols, n_factors):
            fs = chain_factors(b, c)
            sizes = [cols] + [a * bb * d for a, bb, _, d in reversed(fs)]  # from the input to the output
            if any(s < t for s, t in zip(sizes, sizes[1:])):
                continue
            params = sum(a * bb * cc * d for a, bb, cc, d in fs)
            if best is None or params < best[0]:
                best = (params, tuple(fs))
    if best is None:
        raise ValueError(f"no monotone chain of {n_factors} non-trivial factors exists for a {rows} x {cols} "
                         f"matrix (each dimension needs {n_factors} factors >= 2); use fewer factors")
    return best[1]


def support(a: int, b: int, c: int, d: int) -> torch.Tensor:
    """The boolean support I_a ⊗ 1_{b x c} ⊗ I_d of one factor."""
    return torch.kron(torch.kron(torch.eye(a), torch.ones(b, c)), torch.eye(d)).bool()


def factor_matrix(values: torch.Tensor) -> torch.Tensor:
    """The dense factor with the free entries ``values`` (shape (a, b, c, d)) on its support:
    entry (i*b*d + j*d + k, i*c*d + l*d + k) = values[i, j, l, k]."""
    a, b, c, d = values.shape
    eye_a, eye_d = torch.eye(a, dtype=values.dtype, device=values.device), torch.eye(d, dtype=values.dtype,
                                                                                    device=values.device)
    return torch.einsum("ijlk,ip,kq->ijkplq", values, eye_a, eye_d).reshape(a * b * d, a * c * d)


class ButterflyConv2d(nn.Module):
    """A convolution whose weight matrix (out_channels x in_channels*kh*kw) is a DeBut product of
    ``n_factors`` factors (``debut_chain``); only the factors' free entries are parameters. Each factor is
    initialised uniformly so that it keeps its input's variance, the first applied one (F_L) so that the
    product has the variance of PyTorch's default initialisation of the dense layer (002, Sec. 4)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, n_factors: int = 2):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding = stride, padding
        self.chain = debut_chain(out_channels, in_channels * kernel_size ** 2, n_factors)
        self.factors = nn.ParameterList()
        for i, (a, b, c, d) in enumerate(self.chain):
            bound = math.sqrt(3.0 / c) if i < len(self.chain) - 1 else 1.0 / math.sqrt(c)
            self.factors.append(nn.Parameter(torch.empty(a, b, c, d).uniform_(-bound, bound)))

    def weight_matrix(self) -> torch.Tensor:
        w = factor_matrix(self.factors[0])
        for f in self.factors[1:]:
            w = w @ factor_matrix(f)
        return w

    @property
    def weight(self) -> torch.Tensor:
        k = self.kernel_size
        return self.weight_matrix().reshape(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"factors={[tuple(f.shape) for f in self.factors]}")


def butterfly_segments(model: nn.Module, segments: int, n_factors: int) -> nn.Module:
    """Replace every 3x3 convolution of the last ``segments`` segments of a ResNet or fastnet (its ``stages``:
    002's footnote 3) by a ``ButterflyConv2d`` with ``n_factors`` factors, in place; returns the model."""
    stages = getattr(model, "stages", None)
    if stages is None:
        raise ValueError(f"{type(model).__name__} has no `stages`; butterfly segments apply to the ResNets and fastnet")
    if not 1 <= segments <= len(stages):
        raise ValueError(f"segments must be in [1, {len(stages)}], got {segments}")
    for stage in list(stages)[len(stages) - segments:]:
        for parent in stage.modules():
            for name, m in list(parent.named_children()):
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                    if m.bias is not None or m.groups != 1:
                        raise ValueError(f"{name}: only bias-free, ungrouped convolutions are replaced")
                    setattr(parent, name, ButterflyConv2d(m.in_channels, m.out_channels, 3, m.stride[0],
                                                          m.padding[0], n_factors))
    return model
