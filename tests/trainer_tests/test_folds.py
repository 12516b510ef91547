from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
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
    fold_indices,
    load_data,
    member_seed,
)


def cfg(**changes: Any) -> TrainConfig:
    base = {
        "dataset": "synthetic",
        "hidden": (16,),
        "lr": 0.1,
        "epochs": 3,
        "device": "cpu",
        "folds": 3,
        "dropout": 0.2,  # draws from the global random state: lock-step must not mix them
    }
    return TrainConfig(**{**base, **changes})


def fold(data: Data, config: TrainConfig, k: int) -> Data:
    train, dev = fold_indices(
        data.y_train.numpy(), config.folds, task="classification", seed=config.split_seed
    )[k]
    t, d = torch.from_numpy(train), torch.from_numpy(dev)
    return dataclasses.replace(
        data, x_train=data.x_train[t], y_train=data.y_train[t], x_dev=data.x_train[d],
        y_dev=data.y_train[d],
    )  # fmt: skip


def curve(epochs: list[EpochResult]) -> list[dict[str, Any]]:
    """The numbers of a run, without its timings (NaN as None, so that it compares equal)."""
    return [
        {
            k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in e.to_dict().items()
            if k not in ("seconds", "finished_at")
        }
        for e in epochs
    ]


class Stop(Exception):
    pass


def test_stratified_folds_partition_the_rows_and_keep_class_shares() -> None:
    y = np.array([0] * 30 + [1] * 15 + [2] * 6)
    splits = fold_indices(y, 3, task="classification", seed=0)
    devs = np.concatenate([dev for _, dev in splits])
    assert sorted(devs.tolist()) == list(range(len(y)))  # every row is dev exactly once
    for train, dev in splits:
        assert not set(train) & set(dev)
        assert np.bincount(y[dev]).tolist() == [10, 5, 2]


def test_regression_folds_are_plain_k_fold() -> None:
    splits = fold_indices(np.zeros((10, 1)), 5, task="regression", seed=0)
    assert [len(dev) for _, dev in splits] == [2] * 5


def test_more_folds_than_the_smallest_class_is_a_config_error() -> None:
    y = np.array([0] * 20 + [1] * 3)
    with pytest.raises(ConfigError, match=r"class 1 has training examples \(3\).*folds <= 3"):
        fold_indices(y, 5, task="classification", seed=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"folds": 0}, "folds must be >= 1"),
        ({"repeats": 0}, "repeats must be >= 1"),
        ({"dev_fraction": 0.0, "folds": 5}, "dev_fraction = 0 trains on every example"),
        ({"dev_fraction": 0.0, "patience": 3}, "needs folds = 1, repeats = 1 and patience = 0"),
    ],
)
def test_bad_folds_repeats_and_dev_fraction_are_config_errors(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**changes)


def test_a_fold_config_loads_the_whole_training_split_as_its_pool() -> None:
    single = load_data(TrainConfig(dataset="digits", device="cpu"))
    pool = load_data(TrainConfig(dataset="digits", device="cpu", folds=5))
    assert len(pool.y_dev) == 0
    assert len(pool.y_train) == len(single.y_train) + len(single.y_dev)


def test_each_member_trains_as_fit_would_on_its_fold_alone(tiny_data: Data) -> None:
    config = cfg()
    result = cross_fit(config, tiny_data)
    for k in range(config.folds):
        alone = fit(config.replace(folds=1), fold(tiny_data, config, k))
        assert curve(result.members[k].epochs) == curve(alone.epochs)


def test_each_round_reports_the_members_mean(tiny_data: Data) -> None:
    seen: list[EpochResult] = []
    result = cross_fit(cfg(), tiny_data, on_epoch=seen.append)
    assert seen == result.epochs and [e.epoch for e in seen] == [0, 1, 2]
    for e in seen:
        losses = [m.epochs[e.epoch].dev_loss for m in result.members]
        assert e.dev_loss == pytest.approx(statistics.fmean(losses), abs=1e-12)


def test_the_value_is_the_mean_of_each_members_best_epoch(tiny_data: Data) -> None:
    result = cross_fit(cfg(epochs=6, lr=0.5), tiny_data)
    best = [min(e.dev_loss for e in m.epochs) for m in result.members]
    assert result.values("dev_loss") == best
    assert result.value("dev_loss") == pytest.approx(statistics.fmean(best))
    summary = result.summary("dev_loss")
    assert summary["std"] == pytest.approx(statistics.pstdev(best))
    epochs = sorted(m.best_epoch + 1 for m in result.members if m.best_epoch is not None)
    assert summary["refit_epochs"] == epochs[1]  # the median of three


def test_repeats_train_each_fold_with_another_seed(tiny_data: Data) -> None:
    config = cfg(folds=1, repeats=2)
    result = cross_fit(config, tiny_data)
    assert len(result.members) == 2
    second = fit(config.replace(repeats=1, seed=member_seed(config.seed, 1)), tiny_data)
    assert curve(result.members[1].epochs) == curve(second.epochs)
    assert curve(result.members[0].epochs) != curve(second.epochs)


def test_raising_in_the_callback_stops_every_member(tiny_data: Data) -> None:
    rounds: list[int] = []

    def stop_after_one(e: EpochResult) -> None:
        rounds.append(e.epoch)
        raise Stop

    with pytest.raises(Stop):
        cross_fit(cfg(), tiny_data, on_epoch=stop_after_one)
    assert rounds == [0]


def test_a_resumed_fold_run_equals_an_uninterrupted_one(tiny_data: Data, tmp_path: Path) -> None:
    config = cfg(epochs=4)
    whole = cross_fit(config, tiny_data)
    store = FileCheckpoint(str(tmp_path / "ckpt.pt"))

    def interrupt(e: EpochResult) -> None:
        if e.epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        cross_fit(config, tiny_data, on_epoch=interrupt, checkpoint=store)
    seen: list[EpochResult] = []
    resumed = cross_fit(config, tiny_data, on_epoch=seen.append, checkpoint=store)
    # the restored rounds are handed over again, then the rest
    assert curve(seen) == curve(whole.epochs)
    for a, b in zip(resumed.members, whole.members, strict=True):
        assert curve(a.epochs) == curve(b.epochs)


def test_a_single_runs_checkpoint_is_refused_by_a_fold_run(tiny_data: Data, tmp_path: Path) -> None:
    store = FileCheckpoint(str(tmp_path / "ckpt.pt"))
    fit(cfg(folds=1), tiny_data, checkpoint=store)
    with pytest.raises(ValueError, match="holds one network, but this config trains 3"):
        cross_fit(cfg(), tiny_data, checkpoint=store)


def test_fit_refuses_a_config_of_several_networks(tiny_data: Data) -> None:
    with pytest.raises(ValueError, match="use cross_fit"):
        fit(cfg(), tiny_data)


def test_without_a_dev_split_every_example_trains_and_the_last_epoch_is_kept() -> None:
    config = TrainConfig(dataset="digits", hidden=(16,), lr=0.1, epochs=3, device="cpu")
    data = load_data(config.replace(dev_fraction=0.0))
    assert len(data.y_dev) == 0
    result = fit(config.replace(dev_fraction=0.0), data)
    assert result.status == "completed" and result.best_epoch == 2
    assert all(math.isnan(e.dev_loss) and math.isfinite(e.train_loss) for e in result.epochs)
