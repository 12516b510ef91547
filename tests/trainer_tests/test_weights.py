"""Stored weights: `save_weights` / `load_weights`, and scoring them with `evaluate_state`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer import (
    Data,
    FileCheckpoint,
    FitResult,
    TrainConfig,
    WeightsError,
    build_model,
    evaluate,
    evaluate_state,
    fit,
    load_data,
    load_model,
    load_weights,
    save_weights,
)


def cfg(**changes: Any) -> TrainConfig:
    base = {"dataset": "digits", "device": "cpu", "hidden": (32,), "lr": 0.1, "epochs": 2}
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def digits() -> Data:
    return load_data(cfg(), with_test=True)


@pytest.fixture(scope="module")
def run(digits: Data) -> FitResult:
    return fit(cfg(), digits)


@pytest.fixture
def saved(run: FitResult, tmp_path: Path) -> Path:
    path = tmp_path / "best.pt"
    save_weights(run.model, path)
    return path


def test_saved_weights_read_back_equal_on_the_cpu(run: FitResult, saved: Path) -> None:
    state = load_weights(saved)
    own = run.model.state_dict()
    assert list(state) == list(own)
    assert all(t.device.type == "cpu" and torch.equal(t, own[k]) for k, t in state.items())
    assert not Path(f"{saved}.part").exists()


def test_a_file_torch_wrote_from_a_state_dict_loads(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    assert torch.equal(load_weights(tmp_path / "plain.pth")["weight"], model.weight)


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_evaluate_state_reproduces_evaluate(
    digits: Data, run: FitResult, saved: Path, split: str
) -> None:
    x, y = getattr(digits, f"x_{split}"), getattr(digits, f"y_{split}")
    assert evaluate_state(cfg(), digits, saved, split=split) == evaluate(run.model, x, y)


def test_evaluate_state_takes_a_state_dict_and_a_relative_path(
    digits: Data, run: FitResult, saved: Path
) -> None:
    expected = evaluate(run.model, digits.x_dev, digits.y_dev)
    assert evaluate_state(cfg(), digits, run.model.state_dict()) == expected
    assert evaluate_state(cfg(), digits, saved.name, search_path=[saved.parent]) == expected


def test_load_model_leaves_the_random_state_alone(digits: Data, saved: Path) -> None:
    before = torch.get_rng_state()
    model = load_model(cfg(init="he_normal"), digits, saved)
    assert torch.equal(torch.get_rng_state(), before) and not model.training


def test_weights_of_another_shape_are_refused_with_both_shapes(digits: Data, saved: Path) -> None:
    with pytest.raises(WeightsError) as info:
        evaluate_state(cfg(hidden=(16,)), digits, saved)
    message = str(info.value)
    assert message.startswith(f"the weights in {saved} do not fit this config's network: 3 ")
    assert "fc1.weight: (32, 64) in best.pt, (16, 64) in this config's network" in message
    assert "out.weight: (10, 32) in best.pt, (10, 16) in this config's network" in message


def test_missing_and_unexpected_entries_are_refused(digits: Data, saved: Path) -> None:
    with pytest.raises(WeightsError) as info:
        evaluate_state(cfg(hidden=(32,), batch_norm=True), digits, saved)
    message = str(info.value)
    assert "5 entries differ" in message and "bn1.running_mean: missing from best.pt" in message
    state = {**load_weights(saved), "extra.weight": torch.zeros(2, 2)}
    with pytest.raises(WeightsError, match=r"extra\.weight: not in this config's network"):
        evaluate_state(cfg(), digits, state)


def test_a_test_split_that_was_not_loaded_is_refused(saved: Path) -> None:
    with pytest.raises(ValueError, match="holds no test split"):
        evaluate_state(cfg(), load_data(cfg()), saved, split="test")


def test_a_random_file_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(WeightsError, match=r"noise.pt is not a state-dict file torch can read"):
        load_weights(path)


def test_a_pickled_network_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(build_model(cfg(), (1, 8, 8), 10), path)
    with pytest.raises(WeightsError, match=re.escape("torch.save(model.state_dict(), path)")):
        load_weights(path)


def test_a_training_checkpoint_points_at_its_weights(digits: Data, tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    fit(cfg(epochs=1), digits, checkpoint=FileCheckpoint(str(path)))
    with pytest.raises(WeightsError) as info:
        load_weights(path)
    message = str(info.value)
    assert "is not a state dict but another kind of dict" in message
    assert "its weights may be under 'best_state', 'model'" in message


@pytest.mark.parametrize("content", [[1, 2], {}, {"w": 1.0}], ids=["list", "empty", "floats"])
def test_other_objects_are_not_state_dicts(tmp_path: Path, content: Any) -> None:
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(WeightsError, match=r"other\.pt"):
        load_weights(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"no such weights file: .*gone\.pt"):
        load_weights(tmp_path / "gone.pt")
