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


def test_features_are_class_prediction_and_the_robustness_of_the_closed_form(digits):
    """For small ε the robustness feature (1/ε)·E|R(x) − R(x + εN)| of output k tends to E|∇R_k · N| =
    sqrt(2/π)·‖∇R_k‖ (N standard Gaussian): checked against autograd, not against a copy of the code."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = digits.x_train[:6], digits.y_train[:6]
    f = gonon_features(model, x, y, digits, GononAttack(eps=1e-4, draws=4000), seed=7)
    assert f.shape == (6, 30)
    assert torch.equal(f[:, :10], F.one_hot(y, 10).float())
    xn = data.normalize(x, digits.mean, digits.std)
    assert torch.allclose(f[:, 10:20], F.softmax(model(xn), 1).detach())
    for i in range(6):
        jac = torch.autograd.functional.jacobian(lambda v: F.softmax(model(v[None]), 1)[0], xn[i])
        expected = np.sqrt(2 / np.pi) * jac.flatten(1).norm(dim=1)
        assert torch.allclose(f[i, 20:], expected, rtol=0.08, atol=1e-4), (f[i, 20:], expected)
    constant = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        constant[1].weight.zero_()
    assert gonon_features(constant, x, y, digits, GononAttack(eps=1e-2, draws=3), seed=7)[:, 20:].abs().max() == 0


def _features(rng, member, width, shift, noisy=False):
    """Gaussian features whose first column is shifted by ``shift`` for members (and, with ``noisy``, the
    second by a noisy multiple of it)."""
    x = rng.normal(size=(len(member), width))
    x[member, 0] += shift
    if noisy:
        x[member, 1] += shift * rng.normal(size=member.sum())
    return torch.tensor(x, dtype=torch.float32)


def test_discriminators_find_a_signal_and_report_the_strongest():
    rng = np.random.default_rng(0)
    member = np.r_[np.ones(300), np.zeros(300)].astype(bool)
    feats = lambda shift: _features(rng, member, 6, shift)  # noqa: E731
    cfg = GononAttack(epochs=5, hidden=((30,), (30, 30)), lrs=(1e-2, 1e-3))
    out = gonon_attack(feats(3.0), member, feats(3.0), member, cfg, seed=0)
    assert len(out["discriminators"]) == 4
    assert out["accuracy"] == max(d["accuracy"] for d in out["discriminators"]) > 0.9
    assert out["defense"] == pytest.approx(200 - 2 * 100 * out["accuracy"])
    assert out["auc"] == pytest.approx(metrics.roc_auc(member, out["scores"]))
    null = gonon_attack(feats(0.0), member, feats(0.0), member, cfg, seed=0)
    assert 0.4 < null["accuracy"] < 0.6 and 80 < null["defense"] < 120  # no signal: D near 100


def test_bad_attack_settings_are_named():
    with pytest.raises(ValueError, match="eps must be > 0"):
        GononAttack(eps=0)


def test_the_discriminator_is_chosen_on_the_shadow_never_on_the_targets_membership():
    rng = np.random.default_rng(1)
    member = np.r_[np.ones(200), np.zeros(200)].astype(bool)
    feats = lambda shift: _features(rng, member, 4, shift, noisy=True)  # noqa: E731
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
