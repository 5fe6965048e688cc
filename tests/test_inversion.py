"""Model inversion after 004: cut points, frozen prefix, decoder shapes, cached results."""
import pytest
import torch

from mcmia_lib import models
import numpy as np

from mcmia_lib.engine import run
from mcmia_lib.inversion import LAYERS, Decoder, InversionSpec, Prefix, cut_points, decoder_members
from mcmia_lib.runner import ExperimentSpec
from mcmia_lib.train import TrainConfig


@pytest.mark.parametrize("dropout", [None, 0.2])
def test_cut_points_end_each_of_004s_layers_on_the_right_module(dropout):
    m = models.build_model("lomurno_cnn", 10, (1, 28, 28), dropout=dropout)
    kinds = {name: type(m[i]).__name__ for name, i in cut_points(m).items()}
    assert kinds == {"Conv1": "ReLU", "MaxPool1": "MaxPool2d", "Conv2": "ReLU", "MaxPool2": "MaxPool2d",
                     "Conv3": "ReLU", "MaxPool3": "MaxPool2d", "Dense": "ReLU", "Prediction": "Linear"}
    assert type(m[cut_points(m)["Dense"] - 1]).__name__ == "Linear"
    with pytest.raises(ValueError, match="lomurno_cnn architecture"):
        cut_points(models.build_model("lenet5", 10, (1, 28, 28)))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_decoder_reconstructs_an_image_from_every_layer_and_the_prefix_is_frozen(shape):
    m = models.build_model("lomurno_cnn", 10, shape, dropout=0.2)
    x = torch.randn(4, *shape)
    for layer in LAYERS:
        prefix = Prefix(m, layer).train()
        z = prefix(x)
        assert not z.requires_grad and all(not p.requires_grad for p in prefix.parameters())
        assert torch.equal(z, prefix(x))  # dropout off: the deployed model's output
        out = Decoder(tuple(z.shape[1:]), shape)(z)
        assert out.shape == (4, *shape) and 0 <= out.min() and out.max() <= 1
    assert torch.allclose(Prefix(m, "Prediction")(x).sum(1), torch.ones(4))  # softmax output


def test_inversion_result_is_cached(tmp_store):
    target = ExperimentSpec(dataset="digits", model="lomurno_cnn", width=0.25, n_target=300, nn_attack=None,
                            train=TrainConfig(epochs=1, batch_size=50, lr=0.1))
    spec = InversionSpec(target, "Conv1", epochs=6, patience=2, n_train=150, n_val=100, n_examples=3)
    first = run(spec, tmp_store)
    r = first.result
    assert 0 < r["test_mse"] < 1 and first.arrays["reconstructions"].shape == (3, 1, 8, 8)
    assert run(spec, tmp_store).result == r
    val = [h["val_mse"] for h in r["history"]]
    assert r["best_epoch"] == 1 + int(np.argmin(val)) and r["epochs_run"] == len(val) <= 6
    assert r["epochs_run"] == 6 or r["epochs_run"] - r["best_epoch"] == 2  # stopped by patience, not earlier
    assert 0 < r["mean_image_mse"] < 1 and (r["n_train"], r["n_val"]) == (150, 100)
    with pytest.raises(ValueError, match="unknown layer 'Conv4'"):
        InversionSpec(target, "Conv4")
    with pytest.raises(ValueError, match="cannot draw 250 decoder training and 100 validation"):
        run(InversionSpec(target, "Conv1", n_train=250, n_val=100), tmp_store)


def test_an_interrupted_decoder_fit_resumes_to_the_uninterrupted_result(tmp_store, monkeypatch):
    from mcmia_lib import inversion
    target = ExperimentSpec(dataset="digits", model="lomurno_cnn", width=0.25, n_target=300, nn_attack=None,
                            train=TrainConfig(epochs=1, batch_size=50, lr=0.1))
    spec = InversionSpec(target, "Conv2", epochs=5, patience=5, n_train=150, n_val=100, n_examples=3)
    whole = run(spec, tmp_store)
    save = inversion.save_checkpoint

    def save_then_die(path, state):
        save(path, state)
        if len(state["history"]) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(inversion, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(spec, tmp_store, recompute=True)
    monkeypatch.setattr(inversion, "save_checkpoint", save)
    resumed = run(spec, tmp_store, recompute=True)
    assert resumed.result["history"] == whole.result["history"]
    assert resumed.result["test_mse"] == whole.result["test_mse"]
    assert np.array_equal(resumed.arrays["reconstructions"], whole.arrays["reconstructions"])
    assert not list((tmp_store.root.parent / "weights").glob("inv-*.ckpt"))


def test_decoder_members_are_a_random_draw_not_a_prefix_of_sorted_members():
    labels = np.repeat(np.arange(10), 1000)  # a class-ordered copy (the CIFAR-10 JPEG archive)
    members = np.sort(np.random.default_rng(0).choice(10000, 5000, replace=False))
    train, val = decoder_members(members, 2000, 500, seed=0)
    assert len(np.intersect1d(train, val)) == 0 and set(train) | set(val) <= set(members)
    counts = np.bincount(labels[train], minlength=10)
    assert counts.min() > 150  # a prefix would hold about two classes
    assert np.array_equal(decoder_members(members, 2000, 500, seed=0)[0], train)
    assert not np.array_equal(decoder_members(members, 2000, 500, seed=1)[0], train)
    everything, _ = decoder_members(members, None, 500, seed=0)
    assert len(everything) == 4500
