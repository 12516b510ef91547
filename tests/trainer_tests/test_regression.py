from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes
from sklearn.metrics import mean_squared_error, r2_score

from trainer import Data, EpochResult, TrainConfig, build_model, evaluate, fit, load_data


@pytest.fixture(scope="module")
def diabetes_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bunch = load_diabetes()
    path = tmp_path_factory.mktemp("diabetes") / "diabetes.npz"
    # Features in large, uneven units, as raw tables have them; targets ~ 25..346.
    scales = np.array([80.0, 1.0, 30.0, 20.0, 300.0, 200.0, 40.0, 2.0, 1.0, 50.0])
    np.savez(path, x_train=bunch.data * scales + 10.0, y_train=bunch.target)
    return path


def regression(dataset: Path, **changes: Any) -> TrainConfig:
    base = {
        "dataset": str(dataset),
        "task": "regression",
        "standardize": True,
        "monitor": "dev_r2",
        "hidden": (32,),
        "optimizer": "adam",
        "lr": 0.01,
        "epochs": 25,
        "batch_size": 32,
        "device": "cpu",
        "test_fraction": 0.2,
    }
    return TrainConfig(**{**base, **changes})


def test_diabetes_regression_explains_variance(diabetes_npz: Path) -> None:
    config = regression(diabetes_npz)
    data = load_data(config, with_test=True)
    result = fit(config, data)
    best = result.best
    assert result.status == "completed" and best is not None
    assert best.dev_r2 > 0.3  # a constant predictor of the mean scores about 0
    assert all(math.isnan(e.train_accuracy) and math.isnan(e.dev_accuracy) for e in result.epochs)
    r2s = [e.dev_r2 for e in result.epochs]
    assert result.best_epoch == r2s.index(max(r2s))  # dev_r2 is maximised
    assert data.x_test is not None and data.y_test is not None
    test = evaluate(
        result.model, data.x_test, data.y_test, task="regression", target_std=data.target_std
    )
    assert test.r2 > 0.2 and 30.0 < test.rmse < 80.0  # RMSE in the targets' own units


def test_dev_loss_is_in_standardised_units_and_rmse_in_the_targets(diabetes_npz: Path) -> None:
    data = load_data(regression(diabetes_npz))
    assert data.identity["target_variance"] == pytest.approx(1.0)
    raw = load_data(regression(diabetes_npz, standardize=False))
    assert raw.identity["target_variance"] == pytest.approx(
        float(raw.y_train.double().var(unbiased=False))
    )
    assert raw.identity["target_variance"] > 3000  # squared units of the target
    epoch = fit(regression(diabetes_npz, epochs=1), data).epochs[0]
    std = data.target_std
    assert std is not None and len(std) == 1
    assert epoch.dev_rmse == pytest.approx(math.sqrt(epoch.dev_loss) * std[0], rel=1e-6)


class Affine(torch.nn.Module):
    """A fixed predictor: y = x @ w."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


def test_evaluate_matches_scikit_learn_over_several_columns() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 4, generator=generator)  # more than one evaluation batch
    y = x[:, :2] * torch.tensor([1.0, -2.0]) + torch.randn(3000, 2, generator=generator)
    model = Affine(torch.tensor([[0.9, 0.0], [0.0, -1.5], [0.1, 0.0], [0.0, 0.2]]))
    std = [2.0, 5.0]
    scores = evaluate(model, x, y, task="regression", target_std=std)
    pred = (x @ model.weight).detach().numpy()
    truth = y.numpy()
    assert scores.r2 == pytest.approx(
        r2_score(truth, pred, multioutput="uniform_average"), rel=1e-5
    )
    assert scores.loss == pytest.approx(mean_squared_error(truth, pred), rel=1e-5)
    original = (pred - truth) * np.array(std)
    assert scores.rmse == pytest.approx(math.sqrt(np.mean(original**2)), rel=1e-5)
    assert math.isnan(scores.accuracy)


def test_classification_scores_have_no_regression_metrics(tiny_data: Data) -> None:
    config = TrainConfig(dataset="synthetic", hidden=(8,), epochs=1, device="cpu")
    epoch = fit(config, tiny_data).epochs[0]
    assert math.isnan(epoch.dev_rmse) and math.isnan(epoch.dev_r2)
    assert 0.0 <= epoch.dev_accuracy <= 1.0


def test_mlp_output_width_is_the_number_of_target_columns() -> None:
    model = build_model(TrainConfig(task="regression", hidden=(4,)), (3,), 2)
    assert model(torch.randn(5, 3)).shape == (5, 2)


@pytest.mark.parametrize(
    ("monitor", "pick"), [("dev_rmse", min), ("dev_loss", min), ("dev_r2", max)]
)
def test_model_selection_follows_the_monitor(diabetes_npz: Path, monitor: str, pick: Any) -> None:
    config = regression(diabetes_npz, monitor=monitor, epochs=6, lr=0.05)
    result = fit(config, load_data(config))
    values = [e.metric(monitor) for e in result.epochs]
    assert result.best_epoch == values.index(pick(values))


def test_data_of_another_task_is_refused(tiny_data: Data) -> None:
    with pytest.raises(ValueError, match="loaded for task 'classification'"):
        fit(TrainConfig(dataset="synthetic", task="regression", device="cpu"), tiny_data)


def test_old_epoch_records_load_with_nan_metrics() -> None:
    old = {
        "epoch": 0,
        "train_loss": 1.0,
        "train_accuracy": 0.5,
        "dev_loss": 1.1,
        "dev_accuracy": 0.4,
        "lr": 0.1,
        "grad_norm_mean": {"fc1.weight": 1.0},
        "grad_norm_max": {"fc1.weight": 2.0},
        "seconds": 0.1,
        "finished_at": 5.0,
    }
    result = EpochResult.from_dict(old)
    assert math.isnan(result.metric("dev_r2")) and math.isnan(result.metric("dev_rmse"))
    assert result.metric("dev_accuracy") == 0.4


def test_epoch_results_with_nan_compare_equal_after_a_round_trip() -> None:
    import json

    result = EpochResult(
        0, 1.0, math.nan, 1.0, math.nan, 0.1, {}, {}, 0.1, dev_rmse=2.0, dev_r2=0.5
    )
    copy = EpochResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert copy == result
    assert copy != EpochResult.from_dict({**result.to_dict(), "dev_r2": 0.6})


def test_unknown_metric_name() -> None:
    result = EpochResult(0, 1.0, 0.5, 1.0, 0.5, 0.1, {}, {}, 0.1)
    with pytest.raises(KeyError, match="unknown metric 'dev_auc'"):
        result.metric("dev_auc")
