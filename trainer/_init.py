"""Weight-init schemes: the lecture's variances, in normal and uniform form.

Glorot/Xavier keeps Var(w) = 1 / fan_avg, He keeps 2 / fan_in (for ReLU), LeCun keeps 1 / fan_in
(for SELU and tanh-like units). A uniform U(-a, a) has variance a^2 / 3, so its limit is
sqrt(3 * variance). Biases start at zero under every scheme but "default", which keeps torch's
own initialisation untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a linear (out, in) or conv (out, in, *kernel) weight."""
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _variance(kind: str, weight: torch.Tensor) -> float:
    fan_in, fan_out = fans(weight)
    if kind == "glorot":
        return 2.0 / (fan_in + fan_out)  # 1 / fan_avg
    if kind == "he":
        return 2.0 / fan_in
    return 1.0 / fan_in  # lecun


def _scheme(kind: str, distribution: str) -> Callable[[torch.Tensor], None]:
    def init(weight: torch.Tensor) -> None:
        variance = _variance(kind, weight)
        with torch.no_grad():
            if distribution == "normal":
                weight.normal_(0.0, math.sqrt(variance))
            else:
                limit = math.sqrt(3.0 * variance)
                weight.uniform_(-limit, limit)

    init.__doc__ = f"{kind} {distribution} initialisation, in place."
    return init


def _keep_default(weight: torch.Tensor) -> None:
    """Leaves torch's default (Kaiming-uniform with a=sqrt(5)) as it is."""


INIT_SCHEMES: dict[str, Callable[[torch.Tensor], None]] = {
    "default": _keep_default,
    "glorot_normal": _scheme("glorot", "normal"),
    "glorot_uniform": _scheme("glorot", "uniform"),
    "he_normal": _scheme("he", "normal"),
    "he_uniform": _scheme("he", "uniform"),
    "lecun_normal": _scheme("lecun", "normal"),
    "lecun_uniform": _scheme("lecun", "uniform"),
}


INITIALIZED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def initialize(model: nn.Module, scheme: str) -> None:
    """Applies `scheme` to every linear and conv weight of `model`; zeroes their biases.

    Any module counts, ours or the user's: every `nn.Linear` and `nn.Conv1d/2d/3d` in it,
    however deeply nested. Other layers (norms, embeddings, recurrent cells) keep their own
    initialisation.
    """
    if scheme == "default":
        return
    init = INIT_SCHEMES[scheme]
    for module in model.modules():
        if isinstance(module, INITIALIZED_LAYERS):
            init(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
