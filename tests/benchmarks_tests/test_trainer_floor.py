"""The floor benchmark (benchmarks/trainer_floor.py) runs, tiny: its figures are not checked."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from benchmarks.trainer_floor import config_for, floor_epoch, measure, profile
from trainer import Data, build_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """`measure` sets the thread count; the next test gets the old one back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_a_floor_epoch_runs_each_layers_products(tiny_data: Data, network: str) -> None:
    config = config_for(network, 32, 1)
    model = build_model(config, tiny_data.input_shape, tiny_data.num_classes)
    cpu, wall = floor_epoch(model, tiny_data, 32)()
    assert cpu >= 0 and wall > 0


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_measure_interleaves_fit_and_floor_epochs(tiny_data: Data, network: str) -> None:
    pair = measure(network, 32, 1, tiny_data, epochs=2)
    assert len(pair.fit) == len(pair.floor) == len(pair.fit_wall) == len(pair.floor_wall) == 2
    assert math.isfinite(pair.wall_ratio) and pair.wall_ratio > 0


def test_the_profile_names_the_products_and_the_rest(tiny_data: Data) -> None:
    shares = profile("mlp", 32, tiny_data, top=5)
    names = [name for name, _ in shares]
    assert len(names) == 7 and names[-2].startswith("matrix products")
    assert 0 < shares[-2][1] < 1
