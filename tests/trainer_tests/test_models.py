from __future__ import annotations

import pytest
import torch
from torch import nn

from trainer import ACTIVATIONS, TrainConfig, build_model, weight_layers


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_builds_and_runs(name: str) -> None:
    model = build_model(TrainConfig(activation=name, hidden=(8, 4)), (1, 6, 6), 3)
    assert model(torch.randn(5, 1, 6, 6)).shape == (5, 3)
    assert sum(isinstance(m, ACTIVATIONS[name]) for m in model.modules()) == 2


def test_mlp_layers_are_named_in_order() -> None:
    config = TrainConfig(hidden=(8, 4), batch_norm=True, dropout=0.5)
    model = build_model(config, (1, 6, 6), 3)
    names = [name for name, _ in model.named_children()]
    assert names == [
        *["flatten", "fc1", "bn1", "act1", "drop1"],
        *["fc2", "bn2", "act2", "drop2", "out"],
    ]
    assert [name for name, _ in weight_layers(model)] == ["fc1.weight", "fc2.weight", "out.weight"]


def test_selu_gets_alpha_dropout() -> None:
    model = build_model(TrainConfig(activation="selu", dropout=0.2), (4,), 2)
    assert any(isinstance(m, nn.AlphaDropout) for m in model.modules())
    model = build_model(TrainConfig(activation="relu", dropout=0.2), (4,), 2)
    assert not any(isinstance(m, nn.AlphaDropout) for m in model.modules())


def test_no_dropout_layers_when_off() -> None:
    model = build_model(TrainConfig(dropout=0.0), (4,), 2)
    assert not any(isinstance(m, (nn.Dropout, nn.AlphaDropout)) for m in model.modules())


@pytest.mark.parametrize(
    ("shape", "pools"),
    [((1, 8, 8), 2), ((1, 28, 28), 2), ((3, 2, 2), 1), ((1, 1, 1), 0)],
    ids=["digits", "mnist", "tiny", "one-pixel"],
)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_cnn_fits_its_input(shape: tuple[int, int, int], pools: int, batch_norm: bool) -> None:
    config = TrainConfig(model="cnn", channels=(4, 6), hidden=(10,), batch_norm=batch_norm)
    model = build_model(config, shape, 10)
    assert model(torch.randn(3, *shape)).shape == (3, 10)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == pools
    names = [name for name, _ in weight_layers(model)]
    assert names == ["conv1.weight", "conv2.weight", "fc1.weight", "out.weight"]


def test_cnn_refuses_flat_inputs() -> None:
    with pytest.raises(ValueError, match="model 'cnn' needs image inputs"):
        build_model(TrainConfig(model="cnn"), (64,), 10)


def test_same_seed_same_weights() -> None:
    config = TrainConfig(init="glorot_uniform", hidden=(8,))
    torch.manual_seed(0)
    first = build_model(config, (4,), 2).state_dict()
    torch.manual_seed(0)
    second = build_model(config, (4,), 2).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
