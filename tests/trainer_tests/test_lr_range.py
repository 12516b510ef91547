from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

from trainer import (
    OPTIMIZERS,
    Data,
    LRRange,
    TrainConfig,
    build_model,
    fit,
    load_data,
    lr_range_test,
    make_optimizer,
    propose_bounds,
)


def digits(**changes: Any) -> TrainConfig:
    return TrainConfig(**{"dataset": "digits", "device": "cpu", **changes})


@functools.cache
def digits_data() -> Data:
    return load_data(digits())


@functools.cache
def digits_range(optimizer: str, momentum: float = 0.0) -> LRRange:
    """The default 300-step test of the default MLP on digits (cached: several tests read it)."""
    return lr_range_test(digits(optimizer=optimizer, momentum=momentum), digits_data())


def u_curve(steepest: float, minimum: float, n: int = 321) -> tuple[list[float], list[float]]:
    """A loss over lr = 1e-7..10 that falls as -tanh around `steepest` (fastest exactly
    there) down to `minimum`, then rises linearly in log10(lr)."""
    x = np.linspace(-7.0, 1.0, n)
    a, b = math.log10(steepest), math.log10(minimum)
    loss = np.where(x <= b, -np.tanh(x - a), -np.tanh(b - a) + (x - b))
    return [float(10.0**v) for v in x], [float(v) for v in loss]


# --- the sweep ---


def test_lrs_grow_exponentially_from_lr_min_to_lr_max() -> None:
    result = lr_range_test(
        digits(optimizer="adam"), digits_data(), steps=40, lr_min=1e-5, lr_max=1e-2
    )
    assert result.diverged_at is None and len(result.lrs) == len(result.losses) == 40
    expected = torch.logspace(-5, -2, 40, dtype=torch.float64).tolist()
    assert result.lrs == pytest.approx(expected, rel=1e-12)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:], strict=False)]
    assert ratios == pytest.approx([1000 ** (1 / 39)] * 39, rel=1e-12)


def test_the_curve_is_a_plain_torch_loop_with_the_lr_set_each_step() -> None:
    """Oracle: the config's model and optimiser stepped by hand over seeded batches that cycle
    through epochs (train_size 200: four batches an epoch), the loss averaged as fastai does."""
    config = digits(optimizer="sgd", momentum=0.9, train_size=200, hidden=(32,), seed=3)
    data = load_data(config)
    steps, beta = 30, 0.9
    result = lr_range_test(config, data, steps=steps, lr_min=1e-4, lr_max=1e-1, smoothing=beta)

    torch.manual_seed(3)
    model = build_model(config, data.input_shape, data.num_classes)
    optimizer = make_optimizer(model, config)
    order = torch.Generator().manual_seed(3)
    perms = [torch.randperm(200, generator=order) for _ in range(8)]
    batches = [p[i : i + 64] for p in perms for i in range(0, 200, 64)]
    average, expected = 0.0, []
    for i, lr in enumerate(torch.logspace(-4, -1, steps, dtype=torch.float64).tolist()):
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = data.x_train[batches[i]], data.y_train[batches[i]]
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        average = beta * average + (1 - beta) * loss.item()
        expected.append(average / (1 - beta ** (i + 1)))
    assert result.losses == pytest.approx(expected, rel=1e-5)


def test_a_huge_lr_max_stops_the_test_where_the_loss_blows_up() -> None:
    steps, lr_min, lr_max = 200, 1e-4, 1e6
    config = digits(optimizer="sgd")
    result = lr_range_test(config, digits_data(), steps=steps, lr_min=lr_min, lr_max=lr_max)
    assert result.diverged_at is not None and len(result.lrs) < steps
    ratio = (lr_max / lr_min) ** (1 / (steps - 1))
    assert result.diverged_at == pytest.approx(result.lrs[-1] * ratio)  # the next step's lr
    assert all(math.isfinite(loss) for loss in result.losses)
    assert max(result.losses) <= 4.0 * min(result.losses)  # what was kept had not diverged


def test_the_same_config_gives_the_same_curve() -> None:
    config = digits(optimizer="adam", dropout=0.2, hidden=(32,))
    first = lr_range_test(config, digits_data(), steps=60)
    assert lr_range_test(config, digits_data(), steps=60) == first
    other = lr_range_test(config.replace(seed=1), digits_data(), steps=60)
    assert other.losses != first.losses


def test_the_callers_random_state_is_left_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    lr_range_test(digits(dropout=0.5, hidden=(16,)), digits_data(), steps=20, lr_max=1e-3)
    assert torch.equal(torch.rand(3), expected)


def test_the_configs_lr_and_schedule_are_ignored_but_its_optimizer_is_not() -> None:
    """The schedule is the test's own; the config's lr is ignored."""
    base = digits(optimizer="adam", hidden=(16,))
    first = lr_range_test(base, digits_data(), steps=40)
    again = lr_range_test(
        base.replace(lr=0.5, schedule="step", step_size=1, gamma=0.01), digits_data(), steps=40
    )
    assert again.losses == first.losses
    assert lr_range_test(base.replace(optimizer="sgd"), digits_data(), steps=40) != first


@pytest.mark.parametrize(
    "changes",
    [{"model": "cnn", "channels": (4,), "hidden": (16,)}, {"batch_norm": True, "l1": 1e-4}],
    ids=["cnn", "batch_norm_l1"],
)
def test_other_builtin_models_and_settings_run(changes: dict[str, Any]) -> None:
    result = lr_range_test(digits(**changes), digits_data(), steps=80)
    assert len(result.lrs) > 40
    assert result.losses[-1] != result.losses[0]


def test_a_factory_model_runs(models_py: Path) -> None:
    config = digits(model="models.py:build", model_args={"width": 32})
    result = lr_range_test(config, digits_data(), steps=80, search_path=[models_py.parent])
    assert len(result.lrs) > 40 and min(result.losses) < result.losses[0]


def test_a_regression_config_proposes_bounds(tmp_path: Path) -> None:
    bunch = load_diabetes()
    path = tmp_path / "diabetes.csv"
    table = np.column_stack([bunch.data, bunch.target])
    header = ",".join([*bunch.feature_names, "target"])
    np.savetxt(path, table, delimiter=",", header=header, comments="")
    config = TrainConfig(
        dataset=str(path),
        task="regression",
        target="target",
        standardize=True,
        monitor="dev_r2",
        optimizer="adam",
        hidden=(32,),
        batch_size=32,
        device="cpu",
    )
    result = lr_range_test(config, load_data(config))
    assert min(result.losses) < 0.8 * result.losses[0]  # standardised MSE starts near 1
    assert result.lrs[0] <= result.low and result.low * 10 <= result.high < result.minimum


def test_data_for_another_task_is_refused() -> None:
    with pytest.raises(ValueError, match="loaded for task 'classification'"):
        lr_range_test(digits(task="regression", monitor="dev_r2"), digits_data())


@pytest.mark.parametrize(
    "arguments",
    [
        {"steps": 1},
        {"lr_min": 0.0},
        {"lr_min": 1e-2, "lr_max": 5e-2},
        {"smoothing": 1.0},
        {"diverge_factor": 1.0},
    ],
)
def test_arguments_out_of_range_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(arguments))):
        lr_range_test(digits(), digits_data(), **arguments)


def test_a_test_that_diverges_at_once_asks_for_a_lower_lr_min() -> None:
    with pytest.raises(ValueError, match="lower lr_min"):
        lr_range_test(digits(), digits_data(), steps=50, lr_min=1e4, lr_max=1e8)


# --- the bounds on digits ---


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_bounds_span_a_decade_inside_the_tested_range(optimizer: str) -> None:
    result = digits_range(optimizer)
    top = result.diverged_at or result.lrs[-1]
    assert result.low >= 1e-7 and result.high <= min(top, 10.0)
    assert result.low * 10 <= result.high * (1 + 1e-12)
    assert result.low <= result.steepest / 10 and result.high <= result.minimum / 3


def test_adams_bounds_hold_its_usual_lr() -> None:
    result = digits_range("adam")
    assert result.low < 1e-3 < result.high


def test_sgd_with_momentum_proposes_a_higher_high_than_adam() -> None:
    assert digits_range("sgd", 0.9).high > digits_range("adam").high


def test_the_high_bound_learns_and_far_above_the_minimum_does_not() -> None:
    result = digits_range("adam")
    config = digits(optimizer="adam", epochs=3)
    good = fit(config.replace(lr=result.high / 3), digits_data())
    assert good.status == "completed" and good.epochs[-1].dev_accuracy > 0.8
    bad = fit(config.replace(lr=100 * result.minimum), digits_data())
    assert bad.status == "diverged" or bad.epochs[-1].dev_accuracy < 0.3  # chance is 0.1


def test_a_result_survives_json() -> None:
    result = digits_range("sgd", 0.9)
    assert result.diverged_at is not None  # the None case: adam, below
    for value in (result, digits_range("adam")):
        assert LRRange.from_dict(json.loads(json.dumps(value.to_dict()))) == value


# --- propose_bounds on known curves ---


def test_a_u_shaped_curve_gives_its_steepest_point_and_minimum() -> None:
    lrs, losses = u_curve(steepest=1e-3, minimum=0.1)
    low, high, steepest, minimum = propose_bounds(lrs, losses, diverged_at=None)
    assert steepest == pytest.approx(1e-3) and minimum == pytest.approx(0.1)
    assert high == pytest.approx(0.1 / 3) and low == pytest.approx(1e-4)


def test_noise_does_not_move_the_steepest_point_far() -> None:
    lrs, losses = u_curve(steepest=1e-3, minimum=0.1)
    noise = np.random.default_rng(0).normal(0.0, 0.01, len(losses))
    _, _, steepest, _ = propose_bounds(lrs, list(losses + noise), diverged_at=None)
    assert 10**-3.3 < steepest < 10**-2.7


def test_a_steepest_point_near_the_minimum_still_leaves_a_decade() -> None:
    lrs, losses = u_curve(steepest=10**-1.2, minimum=0.1)
    low, high, steepest, _ = propose_bounds(lrs, losses, diverged_at=None)
    assert steepest == pytest.approx(10**-1.2)
    assert high == pytest.approx(0.1 / 3) and low == pytest.approx(high / 10)


def test_a_curve_that_only_rises_proposes_the_bottom_decade() -> None:
    lrs = torch.logspace(-6, 0, 50, dtype=torch.float64).tolist()
    losses = [2.0 + i / 10 for i in range(50)]
    assert propose_bounds(lrs, losses, diverged_at=None) == pytest.approx((1e-6, 1e-5, 1e-6, 1e-6))


def test_a_minimum_just_above_lr_min_keeps_the_bounds_inside() -> None:
    lrs, losses = u_curve(steepest=2e-7, minimum=4e-7)
    low, high, _, _ = propose_bounds(lrs, losses, diverged_at=None)
    assert low == pytest.approx(1e-7) and high == pytest.approx(1e-6)


@pytest.mark.parametrize(
    ("lrs", "losses", "diverged_at", "match"),
    [
        ([1e-3, 1e-2, 1e-1], [1.0, 0.5], None, "3 learning rates but 2 losses"),
        ([1e-3], [1.0], 1e-2, "at least 2"),
        ([1e-3, 1e-2, 1e-1], [1.0, math.nan, 0.5], None, "finite"),
        ([1e-3, 1e-1, 1e-2], [1.0, 0.9, 0.8], None, "strictly increasing"),
        ([1e-3, 2e-3, 4e-3], [1.0, 0.9, 0.8], 8e-3, "lower lr_min"),
    ],
)
def test_curves_without_bounds_are_refused(
    lrs: list[float], losses: list[float], diverged_at: float | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        propose_bounds(lrs, losses, diverged_at=diverged_at)


def test_divergence_is_not_judged_in_the_first_ten_steps() -> None:
    """Unsmoothed losses of single examples with targets 0 or 100 jump a thousandfold from
    step to step while the lr is too small to learn: the jumps of the first ten steps are
    noise, later ones count as divergence."""
    x = torch.zeros(64, 1)
    y = torch.tensor([[0.0], [100.0]]).repeat(32, 1)
    data = Data(x, y, x, y, None, None, num_classes=1, identity={}, task="regression")
    config = TrainConfig(
        dataset="synthetic", task="regression", hidden=(4,), batch_size=1, device="cpu"
    )
    result = lr_range_test(config, data, steps=20, lr_max=1e-5, smoothing=0.0)
    assert result.diverged_at is not None and len(result.lrs) >= 10
    assert max(result.losses[:10]) > 4 * min(result.losses[:10])
