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


def test_the_adversary_climbs_the_gain_and_the_classifier_term_pushes_members_down():
    """Both signs of the game (Nasr et al. Eq. 1 and 3): the inference model's steps raise the gain G above
    chance on a target that separates members from references, and the classifier's extra loss lowers the
    inference model's member score on the classifier's own batch."""
    ds = data.load_dataset("digits")
    torch.manual_seed(0)
    model = models.build_model("mlp", 10, ds.shape)
    train.train(model, ds, range(100), train.TrainConfig(epochs=30, batch_size=20, lr=1e-2, optimizer="adam"),
                seed=0, eval_test=False)  # over-fits its 100 members
    hook = MinMaxHook(ds, range(100), range(200), MinMax(lam=1.0, attack_lr=1e-2), batch_size=64, seed=0)
    for _ in range(60):
        hook._attack_step(model)
    early, late = sum(hook.gains[:10]) / 10, sum(hook.gains[-10:]) / 10
    assert late > early and late > -torch.log(torch.tensor(4.0)).item()
    x = data.normalize(ds.x_train[:64], ds.mean, ds.std)
    y = ds.y_train[:64]
    logits = model(x).detach().requires_grad_(True)
    loss = hook.extra_loss(model, x, y, logits)
    loss.backward()
    from mcmia_lib.attacks.nn_attack import attack_features
    z = logits.detach().requires_grad_(True)
    score = torch.sigmoid(hook.h(*attack_features(z, y))).mean()
    (score_grad,) = torch.autograd.grad(score, z)
    assert (logits.grad * score_grad).sum() > 0  # descending the extra loss lowers the member score
    assert logits.grad.abs().sum() > 0


def test_the_adversary_sees_the_classifier_in_the_classifiers_precision():
    """Under bf16 training the inner adversary's forward passes run in bf16 too (they were fp32: 2-5x the cost
    of a bf16 step on a CPU with AMX)."""
    ds = data.load_dataset("digits")
    seen = []

    class Recording(torch.nn.Sequential):
        def forward(self, x):
            if not self.training:  # the adversary's view (training steps are autocast by the loop itself)
                seen.append(torch.is_autocast_enabled("cpu"))
            return super().forward(x)
    for bf16 in (None, True):
        seen.clear()
        torch.manual_seed(0)
        m = Recording(*models.build_model("mlp", 10, ds.shape))
        hook = MinMaxHook(ds, range(200), range(100), MinMax(lam=1.0, attack_steps=1, attack_lr=1e-3))
        train.train(m, ds, range(200), train.TrainConfig(epochs=1, batch_size=50, lr=1e-3, optimizer="adam",
                                                         bf16=bf16), seed=0, hooks=[hook], eval_test=False)
        assert seen and all(s == bool(bf16) for s in seen), bf16
