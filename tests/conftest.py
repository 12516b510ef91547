"""Fixtures shared by the test packages: a tiny fast config and a tiny synthetic data set.

torch is imported inside the fixtures, so tests that need neither never load it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

# `make test` spreads the tests over processes (pytest-xdist, `--dist loadgroup`). The tests
# that start a local Ray head run one after the other in one of them: a head's start-up took
# 35-65 s on the loaded 2-core machine already, and each binds its own ports.
RAY_TEST = re.compile(r"(^|[_\[-])ray([_\]-]|$)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name == "test_ray.py" or RAY_TEST.search(item.name):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture
def tiny_config() -> Any:
    """A `TrainConfig` that trains a small MLP on digits in well under a second per epoch."""
    from trainer import TrainConfig

    return TrainConfig(dataset="digits", hidden=(16,), epochs=2, lr=0.1, device="cpu")


@pytest.fixture(scope="session")
def tiny_data() -> Any:
    """240 / 60 / 60 one-channel 6x6 images in three learnable classes: the bright third."""
    import torch

    from trainer import Data

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(360, 1, 6, 6, generator=generator)
    y = torch.randint(0, 3, (360,), generator=generator)
    for label in range(3):
        x[y == label, :, 2 * label : 2 * label + 2, :] += 2.0
    return Data(
        x_train=x[:240],
        y_train=y[:240],
        x_dev=x[240:300],
        y_dev=y[240:300],
        x_test=x[300:],
        y_test=y[300:],
        num_classes=3,
        identity={"dataset": "synthetic", "fingerprint": "none", "train": 240, "dev": 60},
    )
