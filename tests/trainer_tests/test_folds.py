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
    # the median of three, times the whole split over a fold's training rows (3/2)
    assert result.growth == pytest.approx(len(tiny_data.y_train) / 160)
    assert summary["refit_epochs"] == math.ceil(epochs[1] * result.growth - 1e-9)
    assert [len(c) for c in summary["curves"]] == [len(m.epochs) for m in result.members]


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


# -- per-fold standardisation (issue 29) ---------------------------------------------------


def standardized_pool(per_feature: bool) -> tuple[TrainConfig, Data]:
    config = TrainConfig(
        dataset="digits", hidden=(8,), epochs=1, device="cpu", folds=3, standardize=per_feature
    )
    return config, load_data(config)


@pytest.mark.parametrize("per_feature", [True, False])
def test_each_folds_inputs_are_standardised_by_its_training_rows_alone(per_feature: bool) -> None:
    from trainer import FoldScaling

    _, data = standardized_pool(per_feature)
    stats = data.standardization
    assert stats is not None
    mean, std = np.asarray(stats["x_mean"]), np.asarray(stats["x_std"])
    raw = data.x_train.double().numpy() * std + mean  # the inputs before standardisation
    for train, dev in fold_indices(data.y_train.numpy(), 3, task="classification", seed=0):
        scaling = FoldScaling.of(data, torch.from_numpy(train))
        fold_data = scaling.apply(data, torch.from_numpy(train), torch.from_numpy(dev))
        rows = raw[train]
        if per_feature:
            want_mean, want_std = rows.mean(axis=0), rows.std(axis=0)
            # a pixel constant on the fold's training rows keeps the whole split's scale
            constant = np.ptp(rows, axis=0) == 0
            want_std[constant] = std[constant]
        else:
            want_mean, want_std = rows.mean(), rows.std()
        want = (raw[dev] - want_mean) / want_std
        assert np.allclose(fold_data.x_dev.numpy(), want, atol=1e-4)
        composed = fold_data.standardization
        assert composed is not None
        assert np.allclose(composed["x_mean"], want_mean, atol=1e-5)
        assert np.allclose(composed["x_std"], want_std, atol=1e-5)


def test_a_folds_dev_rows_do_not_move_its_statistics() -> None:
    from trainer import FoldScaling

    _, data = standardized_pool(True)
    train, dev = fold_indices(data.y_train.numpy(), 3, task="classification", seed=0)[0]
    t = torch.from_numpy(train)
    before = FoldScaling.of(data, t)
    x = data.x_train.clone()
    x[torch.from_numpy(dev)] += 100.0  # the dev rows change wildly; the training rows do not
    after = FoldScaling.of(dataclasses.replace(data, x_train=x), t)
    assert torch.equal(before.x_shift, after.x_shift) and torch.equal(before.x_scale, after.x_scale)


def regression_pool() -> Data:
    """60 rows of a linear target, as `load_data` would give them standardised (identity
    statistics: the numbers are the raw ones)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) * 10 + 3).astype(np.float32)
    return Data(
        x_train=torch.from_numpy(x), y_train=torch.from_numpy(y[:, None]),
        x_dev=torch.zeros(0, 3), y_dev=torch.zeros(0, 1), x_test=None, y_test=None,
        num_classes=1, identity={}, task="regression",
        standardization={"per_feature": True, "x_mean": [0.0] * 3, "x_std": [1.0] * 3,
                         "y_mean": [0.0], "y_std": [1.0]},
    )  # fmt: skip


def test_a_regression_ensemble_averages_its_members_values_in_the_splits_units() -> None:
    from trainer import ensemble_of

    pool = regression_pool()
    config = TrainConfig(
        dataset="synthetic", task="regression", hidden=(8,), epochs=2, folds=2, device="cpu",
        standardize=True,
    )  # fmt: skip
    result = cross_fit(config, pool)
    x = pool.x_train[:7]
    with torch.no_grad():
        want = torch.stack(
            [
                m.model((x - s.x_shift) / s.x_scale).reshape(7, 1) * s.y_scale + s.y_shift
                for m, s in zip(result.members, result.scalings, strict=True)
            ]
        ).mean(dim=0)
        assert torch.allclose(ensemble_of(result).eval()(x), want, atol=1e-6)


def test_a_standardised_regression_fold_rescales_its_targets_and_keeps_rmse_in_units() -> None:
    from trainer import FoldScaling

    pool = regression_pool()
    train = torch.arange(40)
    fold_data = FoldScaling.of(pool, train).apply(pool, train, torch.arange(40, 60))
    assert abs(fold_data.y_train.mean()) < 1e-5
    assert abs(fold_data.y_train.std(correction=0) - 1) < 1e-4
    want = float(pool.y_train[:40].double().std(correction=0))
    assert fold_data.target_std == pytest.approx([want], rel=1e-5)


def test_ten_folds_and_repeats_train_folds_times_repeats_members() -> None:
    config = TrainConfig(
        dataset="digits", hidden=(8,), epochs=2, lr=0.1, device="cpu", folds=10, repeats=2
    )
    result = cross_fit(config, load_data(config))
    assert len(result.members) == 20 and len(result.scalings) == 20
    assert result.summary("dev_loss")["folds"] == 10
    assert result.growth == pytest.approx(10 / 9, rel=0.01)
    # repeat 1 of a fold trains on the rows of repeat 0's, with another seed
    assert torch.equal(result.scalings[3].x_shift, result.scalings[13].x_shift)
    assert curve(result.members[3].epochs) != curve(result.members[13].epochs)


# -- the ensemble of a run's networks -------------------------------------------------------


def test_the_ensemble_scores_the_mean_of_its_members_probabilities() -> None:
    from trainer import ensemble_of, evaluate

    config, _ = standardized_pool(True)
    config = config.replace(epochs=2, lr=0.1)
    full = load_data(config, with_test=True)
    result = cross_fit(config, full)
    model = ensemble_of(result).eval()
    assert full.x_test is not None and full.y_test is not None
    with torch.no_grad():
        probs = torch.stack(
            [
                m.model((full.x_test - s.x_shift) / s.x_scale).softmax(dim=1)
                for m, s in zip(result.members, result.scalings, strict=True)
            ]
        ).mean(dim=0)
        assert torch.allclose(model(full.x_test).exp(), probs, atol=1e-6)
    scores = evaluate(model, full.x_test, full.y_test)
    assert scores.accuracy == pytest.approx((probs.argmax(1) == full.y_test).double().mean().item())


def test_a_kept_ensemble_loads_into_the_configs_skeleton_and_scores_the_same(
    tmp_path: Path,
) -> None:
    from trainer import ensemble_of, evaluate, evaluate_state, save_weights

    config = TrainConfig(
        dataset="digits", hidden=(8,), epochs=2, lr=0.1, device="cpu", folds=3, standardize=True
    )
    data = load_data(config, with_test=True)
    model = ensemble_of(cross_fit(config, data))
    save_weights(model, tmp_path / "ensemble.pt")
    assert data.x_test is not None and data.y_test is not None
    again = evaluate_state(config, data, tmp_path / "ensemble.pt", split="test")
    assert again == evaluate(model, data.x_test, data.y_test)


def test_weights_of_another_number_of_folds_are_refused_naming_the_entries(tmp_path: Path) -> None:
    from trainer import WeightsError, ensemble_of, evaluate_state, save_weights

    config = TrainConfig(dataset="digits", hidden=(8,), epochs=1, device="cpu", folds=3)
    data = load_data(config)
    save_weights(ensemble_of(cross_fit(config, data)), tmp_path / "three.pt")
    with pytest.raises(WeightsError, match=r"members\.3\..*missing from three\.pt"):
        evaluate_state(config.replace(folds=4), data, tmp_path / "three.pt")


def test_an_ensemble_with_a_diverged_member_is_refused() -> None:
    from trainer import ensemble_of

    config = TrainConfig(dataset="digits", hidden=(8,), epochs=1, device="cpu", folds=2)
    result = cross_fit(config, load_data(config))
    result.members[1].best_epoch = None
    with pytest.raises(ValueError, match=r"members \[1\].*diverged"):
        ensemble_of(result)
