import pytest
import torch

from mcmia_lib.defenses.imp import global_magnitude_masks, nonzero_fraction
from mcmia_lib.defenses.pruning import MaskHook, prunable
from mcmia_lib.models import build_model


def _net():
    torch.manual_seed(0)
    net = build_model("mlp", 10, (1, 8, 8))
    with torch.no_grad():
        prunable(net)[0][1].mul_(0.01)  # a layer of small weights: a global ranking prunes it hardest
    return net


def test_global_masks_keep_exactly_the_largest_remaining_weights():
    net = _net()
    weights = [w.detach() for _, w in prunable(net)]
    n = sum(w.numel() for w in weights)
    m1 = global_magnitude_masks(net, 0.8)
    assert sum(int(m.sum()) for m in m1) == round(0.8 * n)
    kept = torch.cat([w.abs().flatten()[m.flatten().bool()] for w, m in zip(weights, m1)])
    dropped = torch.cat([w.abs().flatten()[~m.flatten().bool()] for w, m in zip(weights, m1)])
    assert kept.min() >= dropped.max()  # global: no kept weight is smaller than a pruned one
    assert m1[0].float().mean() < 0.1 < 0.9 < m1[1].float().mean()  # the small layer goes first
    MaskHook(m1).after_step(net)
    m2 = global_magnitude_masks(net, 0.8, m1)
    assert sum(int(m.sum()) for m in m2) == round(0.8 * round(0.8 * n))
    assert all(not (b.bool() & ~a.bool()).any() for a, b in zip(m1, m2))  # pruned weights stay pruned


def test_nonzero_fraction_counts_every_parameter():
    net = _net()
    total = sum(p.numel() for p in net.parameters())
    masks = global_magnitude_masks(net, 0.5)
    MaskHook(masks).after_step(net)
    biases = sum(p.numel() for n, p in net.named_parameters() if n.endswith("bias"))
    assert nonzero_fraction(net) == pytest.approx((sum(int(m.sum()) for m in masks) + biases) / total)


def test_bad_keep_is_named():
    with pytest.raises(ValueError, match="keep must be in"):
        global_magnitude_masks(_net(), 1.5)


def test_nonzero_fraction_against_a_dense_count():
    net = _net()
    own = sum(p.numel() for p in net.parameters())
    assert nonzero_fraction(net, 4 * own) == pytest.approx(nonzero_fraction(net) / 4)
