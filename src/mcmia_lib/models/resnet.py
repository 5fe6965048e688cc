"""ResNets for 32x32 inputs: ResNet-20 (He et al. 2016, CIFAR variant, 1x1 projection shortcuts as
counted by 002: 272,474 parameters) and ResNet-18 (CIFAR variant, 11,173,962 parameters)."""
from __future__ import annotations

from torch import nn

from .width import scaled


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv 3x3, stages of BasicBlocks (one stage = a "segment" in 002), global pool, linear."""

    def __init__(self, widths, blocks, num_classes, in_channels):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages, cin = [], widths[0]
        for i, (cout, n) in enumerate(zip(widths, blocks)):
            layers = []
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.stages(self.stem(x)))


def resnet20(num_classes=10, in_shape=(3, 32, 32), width=1.0) -> ResNet:
    return ResNet([scaled(c, width) for c in (16, 32, 64)], [3, 3, 3], num_classes, in_shape[0])


def resnet18(num_classes=10, in_shape=(3, 32, 32), width=1.0) -> ResNet:
    return ResNet([scaled(c, width) for c in (64, 128, 256, 512)], [2, 2, 2, 2], num_classes, in_shape[0])
