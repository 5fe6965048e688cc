"""A run stopped after an epoch and resumed from its checkpoint ends exactly where an uninterrupted run ends,
for every stateful hook (ADMM's Z, U, ρ; Min-Max's adversary, its optimizer and batch stream); the Min-Max
adversary's initial weights depend on its seed alone; tensors follow the model's device."""
import pytest
import torch

from mcmia_lib import data, models, train
from mcmia_lib.defenses.minmax import MinMax, MinMaxHook
from mcmia_lib.defenses.pruning import ADMMHook

CFG = train.TrainConfig(epochs=4, batch_size=32, lr=1e-3, optimizer="adam")


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits")


class StopAt(train.Hook):
    """Raises in ``after_epoch`` of ``epoch`` (1-based), before that epoch's checkpoint is written."""

    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, epoch, model, record):
        if epoch + 1 == self.epoch:
            raise KeyboardInterrupt


def _run(ds, make_hooks, checkpoint=None, stop=None):
    torch.manual_seed(0)
    model = models.build_model("mlp", 10, ds.shape)
    hooks = make_hooks(model)
    train.train(model, ds, range(300), CFG, seed=0, hooks=hooks + ([StopAt(stop)] if stop else []),
                eval_test=False, checkpoint=checkpoint)
    return model, hooks


def _resumed_equals_uninterrupted(ds, make_hooks, tmp_path):
    whole, hooks_whole = _run(ds, make_hooks)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        _run(ds, make_hooks, ckpt, stop=3)
    resumed, hooks_resumed = _run(ds, make_hooks, ckpt)
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))
    return hooks_whole, hooks_resumed


def test_admm_resumes_with_its_iterates(digits, tmp_path):
    hw, hr = _resumed_equals_uninterrupted(
        digits, lambda m: [ADMMHook(m, [0.5, 0.5, 0.5], rho=0.05, rho_growth=1.5)], tmp_path)
    assert hw[0].rho == hr[0].rho == pytest.approx(0.05 * 1.5 ** 4)
    assert all(torch.equal(a, b) for a, b in zip(hw[0].U, hr[0].U))


def test_minmax_resumes_with_its_adversary(digits, tmp_path):
    make = lambda m: [MinMaxHook(digits, range(300), range(200), MinMax(lam=2.0, attack_lr=1e-3), 32, seed=3)]  # noqa: E731
    hw, hr = _resumed_equals_uninterrupted(digits, make, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(hw[0].h.state_dict().values(), hr[0].h.state_dict().values()))


def test_the_adversary_init_depends_on_its_seed_not_on_what_ran_before(digits):
    cfg = MinMax(lam=1.0)
    torch.manual_seed(123)
    first = MinMaxHook(digits, range(10), range(10), cfg, seed=5)
    torch.rand(1000)  # another phase consumed the global stream (a trained vs a cached pretraining)
    second = MinMaxHook(digits, range(10), range(10), cfg, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(first.h.parameters(), second.h.parameters()))
    other = MinMaxHook(digits, range(10), range(10), cfg, seed=6)
    assert not all(torch.equal(a, b) for a, b in zip(first.h.parameters(), other.h.parameters()))
    state = torch.get_rng_state()
    MinMaxHook(digits, range(10), range(10), cfg, seed=7)
    assert torch.equal(state, torch.get_rng_state())  # building the hook leaves the global stream alone


def test_predict_moves_every_batch_to_the_models_device(digits):
    # no GPU here: the meta device stands in for "another device" (an op mixing devices raises)
    model = models.build_model("mlp", 10, digits.shape).to("meta")
    out = train.predict(model, digits.x_test[:5], digits, batch_size=2)
    assert out.device.type == "meta" and out.shape == (5, 10)
