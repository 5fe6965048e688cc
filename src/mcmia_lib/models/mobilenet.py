"""MobileNetV2 (Sandler et al. 2018) adapted to 32x32 inputs: stem stride 1 and the second stage's
stride 1 (the usual CIFAR variant), 1280-channel last conv; 2,236,682 parameters for 10 classes."""
from __future__ import annotations

from torch import nn

from .width import scaled

# (expansion t, output channels c, repeats n, first stride s); CIFAR variant: stride 1 in stage 2.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn(cin, cout, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU6()] if act else layers


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = _conv_bn(cin, hidden, 1) if t != 1 else []
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden) + _conv_bn(hidden, cout, 1, act=False)
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def mobilenetv2(num_classes=10, in_shape=(3, 32, 32), width=1.0) -> nn.Sequential:
    cin = scaled(32, width)
    layers = _conv_bn(in_shape[0], cin, 3, 1)
    for t, c, n, stride in STAGES:
        for i in range(n):
            layers.append(InvertedResidual(cin, scaled(c, width), stride if i == 0 else 1, t))
            cin = scaled(c, width)
    last = scaled(1280, width)
    return nn.Sequential(*layers, *_conv_bn(cin, last, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(last, num_classes))
