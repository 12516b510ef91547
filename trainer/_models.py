"""Networks: an MLP and a small CNN, built from a `TrainConfig`."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from trainer._config import TrainConfig
from trainer._init import initialize

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def build_model(config: TrainConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network of `config` for inputs of `input_shape` (without the batch dimension).

    Layers are named (`fc1`, `bn1`, `act1`, `drop1`, ..., `out`; `conv1`, ...) so that
    per-layer statistics read well.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if config.model == "cnn":
        if len(input_shape) != 3:
            raise ValueError(
                f"model 'cnn' needs image inputs (channels, height, width), got shape "
                f"{input_shape}; use model = 'mlp' for flat features"
            )
        channels, height, width = input_shape
        for i, out_channels in enumerate(config.channels, start=1):
            layers[f"conv{i}"] = nn.Conv2d(channels, out_channels, 3, padding=1)
            if config.batch_norm:
                layers[f"bn_conv{i}"] = nn.BatchNorm2d(out_channels)
            layers[f"act_conv{i}"] = ACTIVATIONS[config.activation]()
            if min(height, width) >= 2:
                layers[f"pool{i}"] = nn.MaxPool2d(2)
                height, width = height // 2, width // 2
            channels = out_channels
        features = channels * height * width
    else:
        features = 1
        for size in input_shape:
            features *= size
    layers["flatten"] = nn.Flatten()
    for i, width_out in enumerate(config.hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(features, width_out)
        if config.batch_norm:
            layers[f"bn{i}"] = nn.BatchNorm1d(width_out)
        layers[f"act{i}"] = ACTIVATIONS[config.activation]()
        if config.dropout > 0:
            # SELU's self-normalisation needs the dropout that keeps mean and variance.
            drop = nn.AlphaDropout if config.activation == "selu" else nn.Dropout
            layers[f"drop{i}"] = drop(config.dropout)
        features = width_out
    layers["out"] = nn.Linear(features, num_classes)
    model = nn.Sequential(layers)
    initialize(model, config.init)
    return model
