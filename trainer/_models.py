"""Networks: an MLP and a small CNN built from a `TrainConfig`, or the user's factory's."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from trainer._config import MODELS, TrainConfig
from trainer._factory import CHECK_BATCH, build_factory_model, check_output
from trainer._init import initialize
from trainer._pretrain import linear_stack
from trainer._refs import load_factory

if TYPE_CHECKING:
    from trainer._data import Data

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
# Activations that can overwrite their input: each follows a linear, conv or batch-norm layer
# whose output nothing else reads, and writing in place spares an activation-sized tensor per
# layer and step (the same values).
IN_PLACE = frozenset({"relu", "leaky_relu", "elu", "selu"})


def activation(name: str) -> nn.Module:
    """A fresh activation module of `ACTIVATIONS`, in place where it can be."""
    return ACTIVATIONS[name](inplace=True) if name in IN_PLACE else ACTIVATIONS[name]()


def build_model(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    search_path: Sequence[str | Path] = (),
) -> nn.Module:
    """The network of `config` for inputs of `input_shape` (without the batch dimension).

    Ours ("mlp", "cnn") name their layers (`fc1`, `bn1`, `act1`, `drop1`, ..., `out`;
    `conv1`, ...) so that per-layer statistics read well. A factory's network gets the config's
    init scheme on its linear and conv layers, like ours.

    Args:
        config: the model, its settings and the init scheme.
        input_shape: one example's shape.
        num_classes: the number of outputs (classes, or target columns for regression).
        search_path: folders where a factory's file or module is looked for.

    Raises:
        UserCodeError: a factory that cannot be loaded or called, or that returns no module.
        ValueError: model 'cnn' for inputs that are not images.
    """
    if config.model not in MODELS:
        model = build_factory_model(config, input_shape, num_classes, search_path=search_path)
        initialize(model, config.init)
        return model
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
            layers[f"act_conv{i}"] = activation(config.activation)
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
        layers[f"act{i}"] = activation(config.activation)
        if config.dropout > 0:
            # SELU's self-normalisation needs the dropout that keeps mean and variance.
            drop = nn.AlphaDropout if config.activation == "selu" else nn.Dropout
            layers[f"drop{i}"] = drop(config.dropout)
        features = width_out
    layers["out"] = nn.Linear(features, num_classes)
    model = nn.Sequential(layers)
    initialize(model, config.init)
    return model


def check_model(config: TrainConfig, data: Data, *, search_path: Sequence[str | Path] = ()) -> None:
    """Builds the model once and runs a few training examples through it, on the CPU.

    Call it before anything long starts: a factory's mistakes then surface as one clear
    error, with the global random state left as it was.

    Raises:
        UserCodeError: the factory cannot be loaded or called, returns no `nn.Module`, its
            forward pass raises (the message gives the input shape), or its output does not fit
            the task: (N, outputs) for classification, (N, outputs) or, for one output, (N,)
            for regression.
        ValueError: model 'cnn' for inputs that are not images.
        ConfigError: `pretrain_epochs` for a network that cannot be pre-trained layer by layer
            (see `trainer.linear_stack`).
    """
    with torch.random.fork_rng(devices=[]):
        model = build_model(config, data.input_shape, data.num_classes, search_path=search_path)
    x = data.x_train[:CHECK_BATCH].cpu()
    check_output(model, x, task=data.task, outputs=data.num_classes, name=config.model)
    if config.pretrain_epochs:
        linear_stack(model, config.model)


def model_for(
    config: TrainConfig, data: Data, *, search_path: Sequence[str | Path] = ()
) -> tuple[nn.Module, dict[str, str] | None]:
    """The initialised network on the data's device, and a factory's identity (None for ours).

    It draws its initial weights from torch's global generator (seed it first). A factory's
    network is checked on a few examples first, so a misfit fails at once.
    """
    model = build_model(config, data.input_shape, data.num_classes, search_path=search_path)
    model = model.to(data.x_train.device)
    if config.model == "cnn":
        # Convolutions and max pooling run ~1.7x faster on a CPU in channels-last layout.
        return model.to(memory_format=torch.channels_last), None
    if config.model in MODELS:
        return model, None
    check_output(model, data.x_train, task=data.task, outputs=data.num_classes, name=config.model)
    return model, load_factory(config.model, search_path=search_path).identity()


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weight matrices and kernels (not biases or norms), from input to output.

    "Input to output" is registration order (`named_parameters`), which is the order of the
    forward pass for our networks and for most written ones.
    """
    return [(name, p) for name, p in model.named_parameters() if p.dim() > 1]
