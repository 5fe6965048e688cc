"""Model inversion after 004: cut points, frozen prefix, decoder shapes, cached results."""
import pytest
import torch

from mcmia_lib import models
from mcmia_lib.inversion import LAYERS, Decoder, InversionSpec, Prefix, cut_points, run_inversion
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
    spec = InversionSpec(target, "Conv1", epochs=1, n_examples=3)
    first = run_inversion(spec, tmp_store)
    assert 0 < first.result["test_mse"] < 1 and first.arrays["reconstructions"].shape == (3, 1, 8, 8)
    assert run_inversion(spec, tmp_store).result == first.result
    with pytest.raises(ValueError, match="unknown layer 'Conv4'"):
        InversionSpec(target, "Conv4")
