import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mcmia_lib import data, metrics
from mcmia_lib.attacks.gonon import GononAttack, gonon_attack, gonon_features


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits")


def test_features_are_class_prediction_and_the_mean_output_change_over_eps(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    cfg = GononAttack(eps=1e-2, draws=3)
    x, y = digits.x_train[:40], digits.y_train[:40]
    f = gonon_features(model, x, y, digits, cfg, seed=7)
    assert f.shape == (40, 30)
    assert torch.equal(f[:, :10], F.one_hot(y, 10).float())
    assert torch.allclose(f[:, 10:20].sum(1), torch.ones(40))
    xn = data.normalize(x, digits.mean, digits.std)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        p = F.softmax(model(xn), 1)
        rob = sum((p - F.softmax(model(xn + 1e-2 * torch.randn(xn.shape, generator=gen)), 1)).abs()
                  for _ in range(3)) / (3 * 1e-2)
    assert torch.allclose(f[:, 20:], rob, atol=1e-5)
    constant = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        constant[1].weight.zero_()
    assert gonon_features(constant, x, y, digits, cfg, seed=7)[:, 20:].abs().max() == 0


def test_discriminators_find_a_signal_and_report_the_strongest():
    rng = np.random.default_rng(0)
    member = np.r_[np.ones(300), np.zeros(300)].astype(bool)

    def feats(shift):
        x = rng.normal(size=(600, 6))
        x[member, 0] += shift
        return torch.tensor(x, dtype=torch.float32)
    cfg = GononAttack(epochs=5, hidden=((30,), (30, 30)), lrs=(1e-2, 1e-3))
    out = gonon_attack(feats(3.0), member, feats(3.0), member, cfg, seed=0)
    assert len(out["discriminators"]) == 4
    assert out["accuracy"] == max(d["accuracy"] for d in out["discriminators"]) > 0.9
    assert out["defense"] == pytest.approx(200 - 2 * 100 * out["accuracy"])
    assert out["auc"] == pytest.approx(metrics.roc_auc(member, out["scores"]))
    null = gonon_attack(feats(0.0), member, feats(0.0), member, cfg, seed=0)
    assert 0.4 < null["accuracy"] < 0.6 and null["defense"] > 20


def test_bad_attack_settings_are_named():
    with pytest.raises(ValueError, match="eps must be > 0"):
        GononAttack(eps=0)


def test_the_discriminator_is_chosen_on_the_shadow_never_on_the_targets_membership():
    rng = np.random.default_rng(1)
    member = np.r_[np.ones(200), np.zeros(200)].astype(bool)

    def feats(shift):
        x = rng.normal(size=(400, 4))
        x[member, 0] += shift
        x[member, 1] += shift * rng.normal(size=member.sum())  # a second, noisier signal
        return torch.tensor(x, dtype=torch.float32)
    cfg = GononAttack(epochs=3, hidden=((30,), (30, 30)), lrs=(1e-2, 1e-4))
    shadow, target = feats(1.0), feats(1.0)
    out = gonon_attack(shadow, member, target, member, cfg, seed=0)
    runs = out["discriminators"]
    chosen = max(runs, key=lambda r: r["selection_accuracy"])
    assert out["best"] == {"hidden": chosen["hidden"], "lr": chosen["lr"]}
    assert out["accuracy"] == chosen["accuracy"] <= out["oracle"]["accuracy"] == max(r["accuracy"] for r in runs)
    for flipped in (rng.permutation(member), ~member):  # the target's labels change, the choice must not
        again = gonon_attack(shadow, member, target, flipped, cfg, seed=0)
        assert again["best"] == out["best"]
    a, b = metrics.stratified_halves(member, seed=3)
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == 400
    assert member[a].sum() == member[b].sum() == 100
