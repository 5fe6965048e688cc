"""DP-SGD through Opacus in the one training loop, and 004's classic regularizers."""
import copy

import pytest
import torch
from opacus.accountants import RDPAccountant

from mcmia_lib import data, models, train
from mcmia_lib.defenses.dp import DPSGD, DPHook, epsilon_spent
from mcmia_lib.defenses.minmax import MinMax
from mcmia_lib.defenses.regularization import L2LastLayerHook, Regularization
from mcmia_lib.runner import ExperimentSpec, run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SGD = train.TrainConfig(epochs=2, batch_size=40, lr=0.1, optimizer="sgd", momentum=0.0)


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits")


def lomurno(ds, dropout=None):
    torch.manual_seed(0)
    return models.build_model("lomurno_cnn", ds.num_classes, ds.shape, width=0.25, dropout=dropout)


class Recorder(DPHook):
    """DPHook that remembers the Poisson batches it drew."""

    def batches(self):
        for b in super().batches():
            self.drawn.append(b.clone())
            yield b


class Replay(train.Hook):
    """Non-private hook: replay given batches, loss = summed cross-entropy / expected batch size (what
    Opacus's mean reduction divides by)."""

    def __init__(self, drawn, expected):
        self.drawn, self.expected = drawn, expected

    def batches(self):
        yield from self.drawn

    def criterion(self, logits, y):
        return torch.nn.functional.cross_entropy(logits, y, reduction="sum") / self.expected


def test_reported_epsilon_is_the_accountants(digits):
    hook = DPHook(DPSGD(target_epsilon=4.0, max_grad_norm=1.0))
    hist = train.train(lomurno(digits), digits, range(800), SGD, seed=0, hooks=[hook])
    last = hist[-1]
    assert last["dp_steps"] == 2 * 20 and last["dp_sample_rate"] == pytest.approx(1 / 20)
    live = hook.engine.accountant.get_epsilon(delta=1e-5)  # the accountant that watched every step
    acc = RDPAccountant()
    acc.history = [(last["dp_noise_multiplier"], last["dp_sample_rate"], last["dp_steps"])]
    assert last["dp_epsilon"] == pytest.approx(live, rel=1e-9) == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)
    assert 3.9 < last["dp_epsilon"] <= 4.0  # Opacus picks σ so that the target is met, within its tolerance
    assert hist[0]["dp_epsilon"] < last["dp_epsilon"]


def test_without_noise_or_clipping_dp_sgd_is_sgd_on_the_same_batches(digits):
    dp_model, plain = lomurno(digits), lomurno(digits)
    hook = Recorder(DPSGD(noise_multiplier=0.0, max_grad_norm=1e6))
    hook.drawn = []
    one_epoch = train.TrainConfig(epochs=1, batch_size=40, lr=0.1, optimizer="sgd", momentum=0.0)
    train.train(dp_model, digits, range(800), one_epoch, seed=0, hooks=[hook])
    sizes = [len(b) for b in hook.drawn]
    assert len(sizes) == 20 and len(set(sizes)) > 1  # Poisson sampling: batch sizes vary around 40
    train.train(plain, digits, range(800), one_epoch, seed=0, hooks=[Replay(hook.drawn, 40)])
    for a, b in zip(dp_model.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_clipping_bounds_each_examples_contribution(digits):
    model = lomurno(digits)
    before = copy.deepcopy(model)
    hook = Recorder(DPSGD(noise_multiplier=0.0, max_grad_norm=1e-3))
    hook.drawn = []
    one_epoch = train.TrainConfig(epochs=1, batch_size=400, lr=1.0, optimizer="sgd", momentum=0.0)
    train.train(model, digits, range(800), one_epoch, seed=0, hooks=[hook])
    assert len(hook.drawn) == 2
    step = torch.cat([(a - b).flatten() for a, b in zip(model.parameters(), before.parameters())]).norm().item()
    # two steps, each of norm <= lr * C * |B| / E|B|
    assert 0 < step <= 1.0 * 1e-3 * sum(len(b) for b in hook.drawn) / 400 + 1e-7


def test_noise_makes_runs_differ_only_by_seed(digits):
    def fit(seed):
        m = lomurno(digits)
        torch.manual_seed(123)
        train.train(m, digits, range(500), SGD, seed=seed, hooks=[DPHook(DPSGD(noise_multiplier=1.0))])
        return torch.cat([p.flatten() for p in m.parameters()])
    a, b, c = fit(0), fit(0), fit(1)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_dp_result_is_stored_with_its_accounting(tmp_store, digits):
    spec = ExperimentSpec(dataset="digits", model="lomurno_cnn", width=0.25, n_target=600, seed=0, nn_attack=None,
                          train=SGD, dp=DPSGD(target_epsilon=8.0), tfp_attack=True)
    result = run(spec, tmp_store).result
    dp = result["dp"]
    assert result["attacks"]["tfp"]["n_per_side"] == 600 and 0 <= result["attacks"]["tfp"]["auc"] <= 1
    assert dp["epsilon"] == pytest.approx(epsilon_spent("rdp", dp["noise_multiplier"], dp["sample_rate"],
                                                         dp["steps"], 1e-5))
    assert dp["epsilon"] <= 8.0 and dp["steps"] == 2 * round(1 / dp["sample_rate"])


@pytest.mark.parametrize("kwargs,match", [
    ({}, "exactly one of target_epsilon"),
    ({"target_epsilon": 2.0, "noise_multiplier": 1.0}, "exactly one of target_epsilon"),
    ({"target_epsilon": 2.0, "max_grad_norm": 0}, "clipping norm"),
    ({"target_epsilon": 2.0, "delta": 1.0}, r"delta must be in \(0, 1\)"),
])
def test_bad_dp_parameters_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DPSGD(**kwargs)


def test_dp_refuses_batchnorm_adam_and_other_defenses(digits):
    vgg = models.build_model("vgg16", 10, (3, 32, 32), width=0.125)
    with pytest.raises(ValueError, match="without BatchNorm"):
        DPHook(DPSGD(noise_multiplier=1.0)).configure(vgg, torch.optim.SGD(vgg.parameters(), lr=0.1), SGD, 100)
    m = lomurno(digits)
    adam = train.TrainConfig(epochs=1, batch_size=40, lr=1e-3, optimizer="adam")
    with pytest.raises(ValueError, match="optimizer='sgd'"):
        DPHook(DPSGD(noise_multiplier=1.0)).configure(m, torch.optim.Adam(m.parameters()), adam, 100)
    with pytest.raises(ValueError, match="only with dropout"):
        ExperimentSpec(dataset="digits", model="lomurno_cnn", train=SGD, dp=DPSGD(noise_multiplier=1.0),
                       minmax=MinMax(lam=1.0))


def test_l2_penalty_is_on_the_prediction_layer_only(digits):
    m = lomurno(digits)
    w = m[-1].weight
    assert L2LastLayerHook(0.02).extra_loss(m, None, None, None).item() == pytest.approx(0.02 * w.pow(2).sum().item())
    with pytest.raises(ValueError, match="l2_last .* and/or dropout"):
        Regularization()


def test_dropout_layers_where_004_puts_them(digits):
    m = lomurno(digits, dropout=0.2)
    kinds = [type(x).__name__ for x in m]
    drops = [i for i, k in enumerate(kinds) if k == "Dropout"]
    assert len(drops) == 5 and all(m[i].p == 0.2 for i in drops)
    assert [kinds[i - 1] for i in drops[:3]] == ["ReLU"] * 3  # after each conv's activation
    assert kinds[drops[3] + 1] == "Linear" and kinds[drops[4] - 1] == "ReLU"  # before and after the first dense
    assert not any(k == "Dropout" for k in map(lambda x: type(x).__name__, lomurno(digits)))
    with pytest.raises(ValueError, match="mlp has no dropout layers"):
        models.build_model("mlp", 10, (1, 8, 8), dropout=0.2)
    for name, shape, n in (("lenet5", (1, 28, 28), 4), ("fastnet", (3, 32, 32), 4)):  # the comparison's models
        torch.manual_seed(0)
        plain = models.build_model(name, 10, shape)
        torch.manual_seed(0)
        dropped = models.build_model(name, 10, shape, dropout=0.2)
        assert sum(isinstance(x, torch.nn.Dropout) and x.p == 0.2 for x in dropped.modules()) == n
        assert not any(isinstance(x, torch.nn.Dropout) for x in plain.modules())
        assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), dropped.state_dict().values()))


def test_a_dp_run_resumed_from_its_checkpoint_ends_where_an_uninterrupted_one_does(tmp_path, digits):
    class Crash(train.Hook):
        def after_epoch(self, epoch, model, record):
            if epoch == 1:
                raise KeyboardInterrupt

    three = train.TrainConfig(epochs=3, batch_size=40, lr=0.1, optimizer="sgd", momentum=0.0)
    ref = lomurno(digits)
    ref_hist = train.train(ref, digits, range(800), three, seed=0, hooks=[DPHook(DPSGD(noise_multiplier=1.0))])
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train.train(lomurno(digits), digits, range(800), three, seed=0,
                    hooks=[DPHook(DPSGD(noise_multiplier=1.0)), Crash()], checkpoint=ckpt)
    resumed = lomurno(digits)
    hist = train.train(resumed, digits, range(800), three, seed=0, hooks=[DPHook(DPSGD(noise_multiplier=1.0))],
                       checkpoint=ckpt)
    for a, b in zip(ref.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
    assert [h["dp_epsilon"] for h in hist] == [h["dp_epsilon"] for h in ref_hist]
