import copy

import pytest
import torch

from mcmia_lib import data, models, train
from mcmia_lib.defenses import pruning

LENET_RATES = (0.4, 0.9, 0.9375, 0.9375, 0.9375)  # 001, App. E


def test_magnitude_mask_keeps_exactly_the_largest():
    w = torch.tensor([[0.1, -3.0, 0.2], [2.0, -0.05, 1.0]])
    m = pruning.magnitude_mask(w, 0.5)
    assert m.tolist() == [[False, True, False], [True, False, True]]


def test_hard_prune_rates_are_exact():
    torch.manual_seed(0)
    model = models.build_model("lenet5", 10, (1, 28, 28))
    pruning.hard_prune(model, LENET_RATES)
    for row, rate in zip(pruning.sparsity_report(model), LENET_RATES):
        assert row["nonzero"] == pruning.n_keep(row["weights"], rate)
    # 150, 2400, 48000, 10080, 840 weights; 0.9375 * 840 = 787.5 rounds to 788 pruned
    assert sum(r["nonzero"] for r in pruning.sparsity_report(model)) == 90 + 240 + 3000 + 630 + 52


def test_rates_checked_against_layers():
    model = models.build_model("lenet5", 10, (1, 28, 28))
    with pytest.raises(ValueError, match="5 prunable layers"):
        pruning.check_rates(model, (0.5, 0.5))
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        pruning.check_rates(model, (0.5, 0.5, 0.5, 0.5, 1.0))


def test_admm_pulls_weights_to_the_sparse_set_then_masked_retraining_keeps_the_pattern():
    ds = data.load_dataset("mnist")
    idx = range(2000)
    cfg = train.TrainConfig(epochs=3, batch_size=64, lr=1e-3, optimizer="adam")
    torch.manual_seed(0)
    pretrained = models.build_model("lenet5", 10, ds.shape)
    train.train(pretrained, ds, idx, cfg, seed=0, eval_test=False)
    residual = {}
    for rho in (0.0, 1.0):  # rho = 0: Z and U are updated but nothing pulls W towards Z
        model = copy.deepcopy(pretrained)
        hist = train.train(model, ds, idx, cfg, seed=1, hooks=[pruning.ADMMHook(model, LENET_RATES, rho=rho)],
                           eval_test=False)
        residual[rho] = hist[-1]["admm_residual"]
    assert residual[1.0] < 0.5 * residual[0.0]
    masks = pruning.hard_prune(model, LENET_RATES)
    train.train(model, ds, idx, cfg, seed=2, hooks=[pruning.MaskHook(masks)], eval_test=False)
    for (_, w), m in zip(pruning.prunable(model), masks):
        assert torch.equal(w != 0, m)  # same support, exactly, after retraining


@pytest.mark.parametrize("name,shape,target", [("vgg16", (3, 32, 32), 13.84), ("lenet5", (1, 28, 28), 15.78)])
def test_rates_for_compression_reach_the_ratio_with_the_first_layer_fixed(name, shape, target):
    model = models.build_model(name, 10, shape, width=0.25 if name == "vgg16" else 1.0)
    rates = pruning.rates_for_compression(model, target, first_rate=0.35)
    assert rates[0] == 0.35 and len(set(rates[1:])) == 1 and len(rates) == len(pruning.prunable(model))
    pruning.hard_prune(model, rates)
    report = pruning.sparsity_report(model)
    ratio = sum(r["weights"] for r in report) / sum(r["nonzero"] for r in report)
    assert ratio == pytest.approx(target, rel=2e-3)


def test_depthwise_rate_fixes_only_the_depthwise_layers():
    model = models.build_model("mobilenetv2", 10, (3, 32, 32), width=0.25)
    mods = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    rates = pruning.rates_for_compression(model, 10.06, first_rate=0.35, depthwise_rate=0.5)
    depthwise = [pruning.is_depthwise(m) for m in mods]
    assert sum(depthwise) == 17 and not depthwise[0]
    assert all(r == 0.5 for r, d in zip(rates, depthwise) if d)
    assert len({r for r, d in zip(rates[1:], depthwise[1:]) if not d}) == 1 and rates[0] == 0.35
    pruning.hard_prune(model, rates)
    report = pruning.sparsity_report(model)
    assert sum(r["weights"] for r in report) / sum(r["nonzero"] for r in report) == pytest.approx(10.06, rel=2e-3)


def test_impossible_compression_is_a_clear_error():
    model = models.build_model("lenet5", 10, (1, 28, 28))
    with pytest.raises(ValueError, match="choose a compression between"):
        pruning.rates_for_compression(model, 1.0001, first_rate=0.9)
