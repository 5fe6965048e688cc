from dataclasses import replace

import pytest
import torch

from mcmia_lib import data, models, train


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits")


def _fit(ds, cfg, seed=0, hooks=(), checkpoint=None):
    torch.manual_seed(seed)
    m = models.build_model("mlp", 10, ds.shape)
    hist = train.train(m, ds, range(300), cfg, seed, hooks=hooks, checkpoint=checkpoint)
    return m, hist


CFG = train.TrainConfig(epochs=4, batch_size=32, lr=1e-3, optimizer="adam", flip=True, crop_pad=1)


def test_deterministic_for_a_seed(digits):
    a, ha = _fit(digits, CFG, seed=1)
    b, hb = _fit(digits, CFG, seed=1)
    c, _ = _fit(digits, CFG, seed=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_history_records_each_epoch(digits):
    _, hist = _fit(digits, CFG)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"} <= set(hist[0])
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]


def test_an_extra_loss_reaches_the_gradient_as_weight_decay_does(digits):
    class L2(train.Hook):
        def extra_loss(self, model, x, y, logits):
            return 0.5 * 0.1 * sum(p.pow(2).sum() for p in model.parameters())

    cfg = train.TrainConfig(epochs=2, batch_size=50, lr=1e-2, optimizer="sgd", momentum=0.0)
    hooked, _ = _fit(digits, cfg, hooks=[L2()])
    decayed, _ = _fit(digits, train.TrainConfig(**{**cfg.__dict__, "weight_decay": 0.1}))
    plain, _ = _fit(digits, cfg)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(hooked.parameters(), decayed.parameters()))
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(hooked.parameters(), plain.parameters()))


def test_hooks_after_step(digits):
    class ZeroFirstLayer(train.Hook):
        calls = 0

        def after_step(self, model):
            self.calls += 1
            with torch.no_grad():
                model[1].weight[:, :10] = 0  # a mask applied after every step

    hook = ZeroFirstLayer()
    m, _ = _fit(digits, train.TrainConfig(epochs=2, batch_size=50, lr=1e-2, optimizer="sgd"), hooks=[hook])
    assert hook.calls == 2 * 6
    assert torch.count_nonzero(m[1].weight[:, :10]) == 0


def test_checkpoint_resume_equals_uninterrupted(digits, tmp_path):
    full, _ = _fit(digits, CFG, seed=3)
    ckpt = tmp_path / "run.ckpt"
    short = train.TrainConfig(**{**CFG.__dict__, "epochs": 4})
    # simulate a run killed after epoch 2: train with a hook that raises at the end of epoch 2
    class Kill(train.Hook):
        def after_epoch(self, epoch, model, record):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(digits, short, seed=3, hooks=[Kill()], checkpoint=ckpt)
    assert ckpt.exists()
    resumed, hist = _fit(digits, short, seed=3, checkpoint=ckpt)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert all(torch.allclose(p, q) for p, q in zip(full.parameters(), resumed.parameters()))


def test_step_schedule():
    cfg = train.TrainConfig(epochs=100, batch_size=1, lr=0.1, schedule="step")
    assert [train.lr_at(cfg, e) for e in (0, 49, 50, 74, 75, 99)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_bad_config():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train.TrainConfig(epochs=1, batch_size=1, lr=0.1, optimizer="adagrad")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        train.TrainConfig(epochs=0, batch_size=1, lr=0.1)
    with pytest.raises(ValueError, match="curve_subset must be None"):
        train.TrainConfig(epochs=1, batch_size=1, lr=0.1, curve_subset=1)


def test_curve_subset_changes_only_the_curves(digits):
    """Per-epoch test accuracy on a subset equals the accuracy on exactly those test examples; the
    training itself is unchanged."""
    full_model, full = _fit(digits, CFG)
    sub_model, sub = _fit(digits, train.TrainConfig(**{**CFG.__dict__, "curve_subset": 50}))
    assert all(torch.equal(p, q) for p, q in zip(full_model.parameters(), sub_model.parameters()))
    idx = train.curve_indices(len(digits.y_test), 50)
    assert len(idx) == 50 and len(set(idx.tolist())) == 50 and torch.equal(idx, train.curve_indices(len(digits.y_test), 50))
    acc = (train.predict(sub_model, digits.x_test[idx], digits).argmax(1) == digits.y_test[idx]).float().mean().item()
    assert sub[-1]["test_acc"] == pytest.approx(acc)
    assert [h["train_loss"] for h in sub] == [h["train_loss"] for h in full]


def test_keep_best_restores_the_best_epoch_and_survives_a_resume(digits, tmp_path):
    cfg = train.TrainConfig(epochs=5, batch_size=32, lr=0.5, optimizer="sgd")  # lr high: accuracy wanders
    keep = train.KeepBest()
    m, hist = _fit(digits, cfg, seed=4, hooks=[keep])
    accs = [h["test_acc"] for h in hist]
    best = max(range(5), key=lambda i: (accs[i], -i))
    assert best < 3  # (this seed diverges after its first epoch) so the resume below must carry the best
    assert keep.restore(m) == best + 1 and hist[-1]["best_epoch"] == best + 1
    logits = train.predict(m, digits.x_test, digits)
    assert (logits.argmax(1) == digits.y_test).float().mean().item() == pytest.approx(accs[best])

    class Kill(train.Hook):
        def after_epoch(self, epoch, model, record):
            if epoch == 3:
                raise KeyboardInterrupt
    ckpt, keep2 = tmp_path / "run.ckpt", train.KeepBest()
    with pytest.raises(KeyboardInterrupt):
        _fit(digits, cfg, seed=4, hooks=[train.KeepBest(), Kill()], checkpoint=ckpt)
    m2, _ = _fit(digits, cfg, seed=4, hooks=[keep2], checkpoint=ckpt)
    assert keep2.restore(m2) == best + 1
    assert all(torch.allclose(p, q) for p, q in zip(m.parameters(), m2.parameters()))
    with pytest.raises(RuntimeError, match="saw no epoch"):
        train.KeepBest().restore(m)


def test_fast_recipe_options_leave_the_defaults_alone_and_validate():
    from mcmia_lib.store import canonical
    cfg = train.TrainConfig(epochs=2, batch_size=8, lr=0.1)
    assert not {"nesterov", "warmup", "label_smoothing", "decay_weights_only"} & set(canonical(cfg))  # keys unchanged
    with pytest.raises(ValueError, match="nesterov needs optimizer='sgd' with momentum > 0"):
        train.TrainConfig(epochs=1, batch_size=1, lr=0.1, optimizer="adam", nesterov=True)
    with pytest.raises(ValueError, match="warmup is the one-cycle"):
        train.TrainConfig(epochs=1, batch_size=1, lr=0.1, warmup=0.3)
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        train.TrainConfig(epochs=1, batch_size=1, lr=0.1, label_smoothing=1.0)


def test_one_cycle_schedule_values():
    cfg = train.TrainConfig(epochs=10, batch_size=1, lr=1.0, schedule="onecycle", warmup=0.2)
    total = 101
    assert train.lr_at_step(cfg, 0, total) == pytest.approx(0.1)
    assert train.lr_at_step(cfg, 10, total) == pytest.approx(0.1 + 0.9 * 10 / 20)
    assert train.lr_at_step(cfg, 20, total) == pytest.approx(1.0)
    assert train.lr_at_step(cfg, 60, total) == pytest.approx(0.5)
    assert train.lr_at_step(cfg, 100, total) == 0.0


def test_one_cycle_runs_per_step_and_decay_skips_biases(digits):
    cfg = train.TrainConfig(epochs=2, batch_size=50, lr=0.05, schedule="onecycle", nesterov=True,
                            label_smoothing=0.1, weight_decay=0.5, decay_weights_only=True)
    _, hist = _fit(digits, cfg)
    steps = 6
    assert [h["lr"] for h in hist] == pytest.approx([train.lr_at_step(cfg, e * steps, 2 * steps) for e in range(2)])
    m = models.build_model("mlp", 10, digits.shape)
    groups = train.make_optimizer(m, cfg).param_groups
    assert [g["weight_decay"] for g in groups] == [0.5, 0.0]
    assert all(p.ndim == 1 for p in groups[1]["params"]) and all(p.ndim > 1 for p in groups[0]["params"])


def test_hooks_follow_one_protocol_and_two_suppliers_of_batches_or_the_criterion_are_refused(digits):
    class Sampler(train.Hook):
        def batches(self):
            yield torch.arange(50)

    class Loss(train.Hook):
        def criterion(self, logits, y):
            return torch.nn.functional.cross_entropy(logits, y)

    class NotAHook:
        def after_step(self, model):
            pass

    cfg = train.TrainConfig(epochs=1, batch_size=50, lr=1e-2, optimizer="sgd")
    with pytest.raises(ValueError, match="hooks Sampler and Sampler both supply the batches"):
        _fit(digits, cfg, hooks=[Sampler(), Sampler()])
    with pytest.raises(ValueError, match="hooks Loss and Loss both supply the criterion"):
        _fit(digits, cfg, hooks=[Loss(), train.KeepBest(), Loss()])
    with pytest.raises(TypeError, match="NotAHook is not a training hook: subclass mcmia_lib.train.Hook"):
        _fit(digits, cfg, hooks=[NotAHook()])
    _, hist = _fit(digits, cfg, hooks=[Sampler(), Loss(), train.Hook()])  # one of each, and a no-op hook
    assert len(hist) == 1 and hist[0]["train_acc"] >= 0


def test_flip_averaged_logits_and_channels_last_training():
    cifar_like = data.load_dataset("digits")
    m = models.build_model("lomurno_cnn", 10, cifar_like.shape, 0.25)
    x = cifar_like.x_test[:16]
    xn = data.normalize(x, cifar_like.mean, cifar_like.std)
    m.eval()
    expected = (m(xn) + m(torch.flip(xn, dims=[3]))) / 2
    assert torch.allclose(train.predict(m, x, cifar_like, flip_average=True), expected, atol=1e-6)
    assert not torch.allclose(train.predict(m, x, cifar_like), expected, atol=1e-4)  # the flip matters here
    cfg = train.TrainConfig(epochs=2, batch_size=50, lr=0.05, optimizer="sgd")
    runs = {}
    for cl in (None, True):
        torch.manual_seed(0)
        net = models.build_model("lomurno_cnn", 10, cifar_like.shape, 0.25)
        hist = train.train(net, cifar_like, range(300), replace(cfg, channels_last=cl, eval_flip=cl), seed=0)
        runs[cl] = (net, hist)
    conv = next(p for p in runs[True][0].parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert abs(runs[True][1][-1]["train_loss"] - runs[None][1][-1]["train_loss"]) < 1e-4  # same steps, other layout


def test_bf16_autocast_runs_the_layers_in_bfloat16_and_trains_like_fp32(digits):
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(x.dtype)
            return x

    cfg = train.TrainConfig(epochs=3, batch_size=50, lr=0.05, optimizer="sgd")
    runs = {}
    for bf16 in (None, True):
        torch.manual_seed(0)
        net = torch.nn.Sequential(models.build_model("mlp", 10, digits.shape), Probe())
        runs[bf16] = train.train(net, digits, range(500), replace(cfg, bf16=bf16), seed=0)
        assert next(net.parameters()).dtype == torch.float32  # the weights stay fp32
    assert set(seen[:10]) == {torch.float32} and torch.bfloat16 in seen  # fp32 run, then bf16 logits
    a, b = runs[None][-1], runs[True][-1]
    assert a["train_loss"] != b["train_loss"] and abs(a["train_loss"] - b["train_loss"]) < 0.05 * a["train_loss"]
    assert abs(a["test_acc"] - b["test_acc"]) < 0.05

    class Criterion(train.Hook):
        def criterion(self, logits, y):
            return torch.nn.functional.cross_entropy(logits, y)
    with pytest.raises(ValueError, match="bf16 cannot combine with a hook that supplies the criterion"):
        train.train(models.build_model("mlp", 10, digits.shape), digits, range(50), replace(cfg, bf16=True), 0,
                    hooks=[Criterion()])
