import pytest
import torch

from mcmia_lib import data, models, train
from mcmia_lib.defenses.minmax import MinMax, MinMaxHook


def _fit(ds, hooks):
    torch.manual_seed(0)
    m = models.build_model("mlp", 10, ds.shape)
    hist = train.train(m, ds, range(200), train.TrainConfig(epochs=3, batch_size=32, lr=1e-3, optimizer="adam"),
                       seed=0, hooks=hooks, eval_test=False)
    return m, hist


def test_lambda_zero_leaves_the_classifier_unchanged_and_trains_the_adversary():
    ds = data.load_dataset("digits")
    plain, _ = _fit(ds, [])
    hook = MinMaxHook(ds, range(200), range(100), MinMax(lam=0.0, attack_steps=2, attack_lr=1e-3))
    h0 = [p.clone() for p in hook.h.parameters()]
    game, hist = _fit(ds, [hook])
    assert all(torch.equal(p, q) for p, q in zip(plain.parameters(), game.parameters()))
    assert any(not torch.equal(p, q) for p, q in zip(h0, hook.h.parameters()))
    assert all("minmax_gain" in h for h in hist)


def test_positive_lambda_changes_the_classifier_but_not_the_adversary_through_its_loss():
    ds = data.load_dataset("digits")
    plain, _ = _fit(ds, [])
    hook = MinMaxHook(ds, range(200), range(100), MinMax(lam=3.0))
    game, _ = _fit(ds, [hook])
    assert any(not torch.equal(p, q) for p, q in zip(plain.parameters(), game.parameters()))
    assert all(p.requires_grad for p in hook.h.parameters())


def test_bad_minmax_settings():
    with pytest.raises(ValueError, match="lam >= 0"):
        MinMax(lam=-1.0)
