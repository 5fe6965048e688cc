import pytest
import torch

from mcmia_lib.models import build_model, count_parameters

# Standard architectures' parameter counts (LeNet-5: 000/001; ResNet-20: 002, 1x1 projection shortcuts;
# ResNet-18 CIFAR variant; MobileNetV2 = torchvision's mobilenet_v2(num_classes=10) count).
EXPECTED = {("lenet5", (1, 28, 28)): 61706, ("resnet20", (3, 32, 32)): 272474,
            ("resnet18", (3, 32, 32)): 11173962, ("mobilenetv2", (3, 32, 32)): 2236682,
            ("vgg16", (3, 32, 32)): 15253578}


@pytest.mark.parametrize("name,shape", list(EXPECTED))
def test_parameter_counts(name, shape):
    model = build_model(name, 10, shape)
    assert count_parameters(model) == EXPECTED[(name, shape)]
    assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_mobilenet_matches_torchvision_count():
    import torchvision
    assert count_parameters(torchvision.models.mobilenet_v2(num_classes=10)) == EXPECTED[("mobilenetv2", (3, 32, 32))]


@pytest.mark.parametrize("name,shape", list(EXPECTED))
def test_width_multiplier_shrinks(name, shape):
    small = build_model(name, 10, shape, width=0.5)
    assert count_parameters(small) < 0.5 * EXPECTED[(name, shape)]
    assert small(torch.zeros(1, *shape)).shape == (1, 10)


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="choose one of"):
        build_model("alexnet", 10, (3, 32, 32))
    with pytest.raises(ValueError, match="width multiplier"):
        build_model("lenet5", 10, (1, 28, 28), width=0)


@pytest.mark.parametrize("name,width,shape", [("fastnet", 1.0, (3, 32, 32)), ("fastnet", 0.5, (3, 32, 32)),
                                              ("fastnet_gn", 1.0, (3, 32, 32)), ("fastnet", 1.0, (1, 28, 28))])
def test_fastnet_parameter_count_matches_its_closed_form(name, width, shape):
    from mcmia_lib.models.fastnet import fastnet_parameters
    m = build_model(name, 10, shape, width)
    assert count_parameters(m) == fastnet_parameters(10, shape[0], width)
    assert m(torch.zeros(2, *shape).to(memory_format=torch.channels_last)).shape == (2, 10)
    norms = {type(x).__name__ for x in m.modules()} & {"BatchNorm2d", "GroupNorm"}
    assert norms == ({"GroupNorm"} if name.endswith("_gn") else {"BatchNorm2d"})
