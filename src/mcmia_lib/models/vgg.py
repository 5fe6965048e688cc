"""VGG16 for 32x32 inputs (Simonyan & Zisserman 2015, configuration D, with BatchNorm): 13 conv 3x3
layers, then two fully connected layers and the output layer, as 000 Sec. V-A describes it."""
from __future__ import annotations

from torch import nn

from .width import scaled

CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(num_classes=10, in_shape=(3, 32, 32), width=1.0) -> nn.Sequential:
    layers, cin = [], in_shape[0]
    for v in CFG_D:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
            continue
        cout = scaled(v, width)
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
        cin = cout
    spatial = (in_shape[1] // 32) * (in_shape[2] // 32)
    hidden = scaled(512, width)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * spatial, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
