"""A small MLP for tabular regression, as a model factory for hpstudy.

The spec names it as ``model = "models.py:mlp"``. hpstudy calls it with keyword arguments:
``input_shape`` (the number of feature columns, as a 1-tuple), ``num_classes`` (here the number
of target columns), the config's ``dropout`` and ``activation``, and every entry of
``[train.model_args]`` (``width`` and ``depth``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}


def mlp(
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int = 32,
    depth: int = 2,
    dropout: float = 0.0,
    activation: str = "relu",
) -> nn.Sequential:
    """`depth` hidden layers of `width` units, each followed by `activation` and dropout, then
    one linear output per target column.

    Raises:
        ValueError: for an unknown activation, or a width or depth below 1.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if width < 1 or depth < 1:
        raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(features, width), ACTIVATIONS[activation]()]
        layers += [nn.Dropout(dropout)] if dropout > 0 else []
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
