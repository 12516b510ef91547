from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.trainer_tests.user_code import LOADERS, MODELS


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: the tensors here are tiny, and the test machine's cores are shared
    (two threads fighting other jobs for two cores run many times slower). Results do not
    depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def models_py(tmp_path: Path) -> Path:
    """A file of model factories (see `user_code.MODELS`)."""
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


@pytest.fixture
def loaders_py(tmp_path: Path) -> Path:
    """A file of data loaders (see `user_code.LOADERS`)."""
    path = tmp_path / "loaders.py"
    path.write_text(LOADERS)
    return path
