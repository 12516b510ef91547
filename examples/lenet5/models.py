"""LeNet-5 (LeCun et al., 1998) as a model factory for hpstudy.

The spec names it as ``model = "models.py:lenet5"``. hpstudy calls it with keyword arguments
only: ``input_shape`` and ``num_classes`` from the data, the config's ``activation``,
``dropout`` and ``batch_norm`` (the factory names them, so the spec may search them), and
every entry of ``[train.model_args]`` (here ``channels``, ``hidden`` and ``pool``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,  # LeCun's choice (a scaled tanh)
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
}
POOLS: dict[str, Callable[[], nn.Module]] = {
    "avg": lambda: nn.AvgPool2d(2),  # the paper's subsampling layers S2 and S4
    "max": lambda: nn.MaxPool2d(2),
}
KERNEL = 5  # C1 and C3 use 5x5 kernels


def lenet5(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: Sequence[int] = (6, 16),
    hidden: Sequence[int] = (120, 84),
    activation: str = "tanh",
    dropout: float = 0.0,
    batch_norm: bool = False,
    pool: str = "avg",
) -> nn.Sequential:
    """conv5-pool-conv5-pool, then dense layers `hidden`, then `num_classes` logits.

    C1 pads by 2, so a 28x28 MNIST digit gives the 28x28 maps a 32x32 input gives in the
    paper, and C3 sees 14x14 -> 10x10 -> S4 5x5 as in the paper.

    Args:
        input_shape: one image's (channels, height, width); 28x28 or larger.
        num_classes: logits to output.
        channels: output channels of C1 and C3 (the paper's 6 and 16).
        hidden: widths of the dense layers before the output (the paper's 120 and 84).
        activation: a key of `ACTIVATIONS`, after every conv and hidden dense layer.
        dropout: drop probability after each hidden dense layer.
        batch_norm: batch norm after each conv and hidden dense layer (before the activation).
        pool: a key of `POOLS`: "avg" (the paper's subsampling) or "max".

    Raises:
        ValueError: for an unknown activation or pool, or an image too small for two blocks.
    """
    if activation not in ACTIVATIONS or pool not in POOLS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)} and pool one of {sorted(POOLS)}, "
            f"got activation={activation!r}, pool={pool!r}"
        )
    in_channels, height, width = input_shape
    if min(height, width) < 28:
        raise ValueError(f"LeNet-5 needs images of at least 28x28, got {height}x{width}")
    c1, c3 = channels
    layers = [
        *_conv_block(in_channels, c1, padding=2, batch_norm=batch_norm, activation=activation),
        POOLS[pool](),
        *_conv_block(c1, c3, padding=0, batch_norm=batch_norm, activation=activation),
        POOLS[pool](),
        nn.Flatten(),
    ]
    features = c3 * _side(height) * _side(width)
    for size in hidden:
        layers += _dense_block(features, size, batch_norm, activation, dropout)
        features = size
    layers.append(nn.Linear(features, num_classes))
    # hpstudy hands a Sequential that starts with a conv its images in channels-last layout;
    # conv weights in the same layout train about 1.3x faster on a CPU than mixed layouts.
    return nn.Sequential(*layers).to(memory_format=torch.channels_last)


def _side(size: int) -> int:
    """A side's length after C1 (padded: unchanged), S2, C3 (unpadded) and S4."""
    return (size // 2 - (KERNEL - 1)) // 2


def _conv_block(
    in_channels: int, out_channels: int, *, padding: int, batch_norm: bool, activation: str
) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, KERNEL, padding=padding, bias=not batch_norm)
    norm = [nn.BatchNorm2d(out_channels)] if batch_norm else []
    return [conv, *norm, ACTIVATIONS[activation]()]


def _dense_block(
    in_features: int, out_features: int, batch_norm: bool, activation: str, dropout: float
) -> list[nn.Module]:
    linear = nn.Linear(in_features, out_features, bias=not batch_norm)
    norm = [nn.BatchNorm1d(out_features)] if batch_norm else []
    drop = [nn.Dropout(dropout)] if dropout > 0 else []
    return [linear, *norm, ACTIVATIONS[activation](), *drop]
