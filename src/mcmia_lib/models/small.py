"""Small models: LeNet-5 (000/001), the 2-conv + 2-FC CIFAR CNN of 000's Table I, the CNN of 004
(Lomurno & Matteucci), an MLP."""
from __future__ import annotations

from torch import nn

from .width import scaled


def lenet5(num_classes=10, in_shape=(1, 28, 28), width=1.0, dropout=0.0) -> nn.Sequential:
    """LeNet-5 (LeCun et al. 1998) with ReLU and average pooling; 61,706 parameters on 28x28 MNIST
    (conv 5x5 with padding 2, so 28x28 inputs reach the classic 16x5x5 feature map). ``dropout`` > 0 puts dropout
    after each pooling and each hidden dense layer (004's regularizer, Sec. 4)."""
    c, h, w = in_shape
    c1, c2, f1, f2 = scaled(6, width), scaled(16, width), scaled(120, width), scaled(84, width)
    pad = 2 if h == 28 else 0
    hh, ww = (h + 2 * pad - 4) // 2, (w + 2 * pad - 4) // 2
    hh, ww = (hh - 4) // 2, (ww - 4) // 2
    drop = (lambda: [nn.Dropout(dropout)]) if dropout else (lambda: [])
    return nn.Sequential(
        nn.Conv2d(c, c1, 5, padding=pad), nn.ReLU(), nn.AvgPool2d(2), *drop(),
        nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.AvgPool2d(2), *drop(), nn.Flatten(),
        nn.Linear(c2 * hh * ww, f1), nn.ReLU(), *drop(), nn.Linear(f1, f2), nn.ReLU(), *drop(),
        nn.Linear(f2, num_classes))


def cifar_cnn(num_classes=10, in_shape=(3, 32, 32), width=1.0) -> nn.Sequential:
    """Two conv (5x5, max-pool) + two fully connected layers, the CIFAR-10 CNN family of 000's Table I."""
    c, h, w = in_shape
    c1, c2, f1 = scaled(32, width), scaled(64, width), scaled(512, width)
    return nn.Sequential(
        nn.Conv2d(c, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(c2 * (h // 4) * (w // 4), f1), nn.ReLU(), nn.Linear(f1, num_classes))


def lomurno_cnn(num_classes=10, in_shape=(1, 28, 28), width=1.0, dropout=0.0) -> nn.Sequential:
    """004's target (its Fig. 1): three blocks of 3x3 conv (ReLU) + 2x2 max-pool, a dense layer (ReLU) and the
    prediction layer. 004 prints no channel counts; ours are 32, 64, 128 and 128 units. ``dropout`` > 0 puts
    dropout after each conv layer and before and after the first dense layer (004 Sec. 4, at 20%). No
    BatchNorm, so DP-SGD needs no change of the model."""
    c, h, w = in_shape
    chans, f1 = [scaled(k, width) for k in (32, 64, 128)], scaled(128, width)
    drop = (lambda: [nn.Dropout(dropout)]) if dropout else (lambda: [])
    layers, cin = [], c
    for cout in chans:
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), *drop(), nn.MaxPool2d(2)]
        cin, h, w = cout, h // 2, w // 2
    return nn.Sequential(*layers, nn.Flatten(), *drop(), nn.Linear(cin * h * w, f1), nn.ReLU(), *drop(),
                         nn.Linear(f1, num_classes))


def mlp(num_classes=10, in_shape=(1, 8, 8), width=1.0, hidden=(256, 256)) -> nn.Sequential:
    """Fully connected ReLU network on flattened inputs (the quickstart's overfit target)."""
    layers, d = [nn.Flatten()], in_shape[0] * in_shape[1] * in_shape[2]
    for hdim in hidden:
        layers += [nn.Linear(d, scaled(hdim, width)), nn.ReLU()]
        d = scaled(hdim, width)
    return nn.Sequential(*layers, nn.Linear(d, num_classes))
