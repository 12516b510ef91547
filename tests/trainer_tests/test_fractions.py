"""`TrainConfig.fractions`: scored points inside the first epoch."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer import (
    ConfigError,
    Data,
    EpochResult,
    FileCheckpoint,
    TrainConfig,
    cross_fit,
    fit,
    stratified_order,
)


def cfg(**changes: Any) -> TrainConfig:
    base = {"dataset": "synthetic", "hidden": (16, 8), "lr": 0.1, "epochs": 3, "device": "cpu"}
    return TrainConfig(**{**base, **changes})


def measured(results: list[EpochResult]) -> list[EpochResult]:
    """The results without their timings."""
    return [dataclasses.replace(r, seconds=0.0, finished_at=0.0) for r in results]


class Stop(Exception):
    pass


def test_the_first_epoch_is_scored_at_each_fraction(tiny_data: Data) -> None:
    seen: list[EpochResult] = []
    result = fit(cfg(fractions=[1 / 9, 1 / 3]), tiny_data, on_epoch=seen.append)
    assert [(e.epoch, round(e.fraction, 2)) for e in seen] == [
        (0, 0.11),
        (0, 0.33),
        (0, 1.0),
        (1, 1.0),
        (2, 1.0),
    ]
    assert [e.partial for e in seen] == [True, True, False, False, False]
    assert result.partials == seen[:2] and result.epochs == seen[2:]
    assert seen[0].fraction == round(240 / 9) / 240  # a share of the 240 training rows
    assert seen[0].epochs_trained < seen[1].epochs_trained < seen[2].epochs_trained == 1.0
    assert seen[0].seconds < seen[1].seconds < seen[2].seconds  # time since the epoch began


def test_without_fractions_no_partial_point_is_scored(tiny_data: Data) -> None:
    seen: list[EpochResult] = []
    result = fit(cfg(), tiny_data, on_epoch=seen.append)
    assert result.partials == [] and [e.fraction for e in seen] == [1.0, 1.0, 1.0]


def test_fractions_are_repeatable(tiny_data: Data) -> None:
    config = cfg(fractions=[0.1, 0.5], dropout=0.3)
    first: list[EpochResult] = []
    second: list[EpochResult] = []
    fit(config, tiny_data, on_epoch=first.append)
    fit(config, tiny_data, on_epoch=second.append)
    assert measured(first) == measured(second)


def test_a_partial_points_train_loss_is_the_mean_over_its_batches(tiny_data: Data) -> None:
    # One batch of the whole first share: its loss is the loss of that first step.
    config = cfg(fractions=[0.25], batch_size=60, epochs=1)
    seen: list[EpochResult] = []
    fit(config, tiny_data, on_epoch=seen.append)
    partial, whole = seen
    assert partial.fraction == 0.25
    assert partial.train_loss != whole.train_loss
    assert partial.train_loss > whole.train_loss  # the network learns during the epoch


def test_partial_points_are_not_epochs_for_patience_or_selection(tiny_data: Data) -> None:
    result = fit(cfg(fractions=[0.2, 0.4, 0.6, 0.8], patience=1, epochs=2), tiny_data)
    assert len(result.partials) == 4
    assert result.best_epoch is not None and result.best is result.epochs[result.best_epoch]
    assert not result.best.partial


def test_every_prefix_of_the_stratified_order_is_stratified() -> None:
    y = torch.tensor([0] * 90 + [1] * 30 + [2] * 60)[torch.randperm(180)]
    order = stratified_order(y, "classification", torch.Generator().manual_seed(3))
    assert sorted(order.tolist()) == list(range(180))
    for m in (20, 60, 100):
        counts = torch.bincount(y[order[:m]], minlength=3).tolist()
        expected = [m * 90 / 180, m * 30 / 180, m * 60 / 180]
        assert all(abs(c - e) <= 1 for c, e in zip(counts, expected, strict=True))


def test_a_regression_order_is_a_permutation() -> None:
    y = torch.randn(50)
    order = stratified_order(y, "regression", torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(50))


def test_resume_replays_the_partial_points(tiny_data: Data, tmp_path: Path) -> None:
    config = cfg(fractions=[1 / 3], epochs=3)
    whole: list[EpochResult] = []
    fit(config, tiny_data, on_epoch=whole.append)

    def stop_at_two(result: EpochResult) -> None:
        if result.epoch == 2:
            raise Stop

    store = FileCheckpoint(str(tmp_path / "run.pt"))
    with pytest.raises(Stop):
        fit(config, tiny_data, on_epoch=stop_at_two, checkpoint=store)
    replayed: list[EpochResult] = []
    fit(config, tiny_data, on_epoch=replayed.append, checkpoint=store)
    assert measured(replayed) == measured(whole)


def test_batch_norm_skips_a_one_row_batch_at_a_stretch_end(tiny_data: Data) -> None:
    # 0.3 * 240 = 72 rows: batches of 71 leave one row, which batch norm cannot train on
    result = fit(cfg(fractions=[0.3], batch_norm=True, batch_size=71, epochs=1), tiny_data)
    assert result.status == "completed" and result.partials[0].fraction == 0.3


def test_folds_merge_the_partial_points(tiny_data: Data) -> None:
    seen: list[EpochResult] = []
    result = cross_fit(cfg(fractions=[0.5], folds=3, epochs=2), tiny_data, on_epoch=seen.append)
    assert [(e.epoch, e.partial) for e in seen] == [(0, True), (0, False), (1, False)]
    assert len(result.partials) == 1 and len(result.epochs) == 2
    assert 0.49 < result.partials[0].fraction < 0.51


@pytest.mark.parametrize("fractions", [[0.5, 0.2], [0.0, 0.5], [0.5, 1.0], [0.3, 0.3]])
def test_bad_fractions_are_refused_naming_the_key(fractions: list[float]) -> None:
    with pytest.raises(ConfigError, match="fractions must be strictly increasing"):
        cfg(fractions=fractions)


def test_fractions_must_be_numbers() -> None:
    with pytest.raises(ConfigError, match="fractions must be a list of numbers"):
        TrainConfig.from_dict({"fractions": ["a"]})


def test_old_epoch_records_read_back_as_whole_epochs(tiny_data: Data) -> None:
    values = fit(cfg(epochs=1), tiny_data).epochs[0].to_dict()
    del values["fraction"]
    assert EpochResult.from_dict(values).fraction == 1.0


def test_regression_is_scored_at_each_fraction(tiny_data: Data) -> None:
    def targets(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :2].sum(dim=1, keepdim=True)

    data = dataclasses.replace(
        tiny_data,
        y_train=targets(tiny_data.x_train),
        y_dev=targets(tiny_data.x_dev),
        num_classes=1,
        task="regression",
    )
    config = cfg(task="regression", fractions=[0.25, 0.5], epochs=2, lr=0.01)
    seen: list[EpochResult] = []
    fit(config, data, on_epoch=seen.append)
    assert [e.fraction for e in seen] == [0.25, 0.5, 1.0, 1.0]
    assert all(e.dev_rmse > 0 for e in seen)
