from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainer import INIT_SCHEMES, fans, initialize

SCHEMES = sorted(name for name in INIT_SCHEMES if name != "default")


def expected_variance(name: str, fan_in: int, fan_out: int) -> float:
    """The lecture's variances: Glorot 1/fan_avg, He 2/fan_in, LeCun 1/fan_in."""
    family = name.split("_")[0]
    return {
        "glorot": 2.0 / (fan_in + fan_out),
        "he": 2.0 / fan_in,
        "lecun": 1.0 / fan_in,
    }[family]


def wide_layers() -> list[nn.Module]:
    # 2,000,000 and 73,728 weights: the sample variance is within ~0.1% and ~0.5% (1 sigma).
    return [nn.Linear(1000, 2000), nn.Conv2d(64, 128, 3)]


def test_fans_of_linear_and_conv() -> None:
    linear, conv = wide_layers()
    assert fans(linear.weight) == (1000, 2000)
    assert fans(conv.weight) == (64 * 9, 128 * 9)


@pytest.mark.parametrize("name", SCHEMES)
@pytest.mark.parametrize("layer", [0, 1], ids=["linear", "conv"])
def test_variance_matches_the_lecture(name: str, layer: int) -> None:
    torch.manual_seed(0)
    module = wide_layers()[layer]
    initialize(nn.Sequential(module), name)
    weight = module.weight.detach()
    variance = expected_variance(name, *fans(weight))
    assert weight.mean().item() == pytest.approx(0.0, abs=0.02 * math.sqrt(variance))
    assert weight.var().item() == pytest.approx(variance, rel=0.03)


@pytest.mark.parametrize("name", SCHEMES)
def test_distribution_shape(name: str) -> None:
    """Uniform schemes stay inside +-sqrt(3 var) and reach its edge; normal ones go past it."""
    torch.manual_seed(0)
    module = nn.Linear(1000, 2000)
    initialize(nn.Sequential(module), name)
    weight = module.weight.detach()
    limit = math.sqrt(3.0 * expected_variance(name, *fans(weight)))
    beyond = (weight.abs() > limit).float().mean().item()
    if name.endswith("_uniform"):
        assert weight.abs().max().item() <= limit
        assert weight.abs().max().item() > 0.999 * limit
        assert beyond == 0.0
    else:
        assert name.endswith("_normal")
        assert beyond == pytest.approx(0.0833, abs=0.005)  # P(|z| > sqrt 3) for a normal


@pytest.mark.parametrize("name", SCHEMES)
def test_biases_start_at_zero(name: str) -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    initialize(model, name)
    assert all(torch.count_nonzero(m.bias) == 0 for m in (model[0], model[2]))


def test_default_keeps_torchs_own_initialisation() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(10, 5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    initialize(model, "default")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.count_nonzero(model[0].bias) > 0
