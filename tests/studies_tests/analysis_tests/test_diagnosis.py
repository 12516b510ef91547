from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from studies.analysis import LABELS, Diagnosis, Thresholds, diagnose

CHANCE = math.log(10)  # cross-entropy of a uniform guess over 10 classes
LAYERS = ("net.0.weight", "net.3.weight", "net.6.weight")  # input layer first
HEALTHY_GRADS = (0.05, 0.1, 0.2)

Record = dict[str, Any]


# --- curve builders ------------------------------------------------------------------------


def decay(start: float, end: float, rate: float, n: int) -> list[float]:
    """An exponential approach from `start` to `end`, as a loss curve falls."""
    return [end + (start - end) * math.exp(-rate * i) for i in range(n)]


def u_shape(n: int) -> list[float]:
    """A dev loss that falls, bottoms out near epoch 5 and rises by 0.03 an epoch."""
    return [0.2 + 2.1 * math.exp(-0.8 * i) + 0.03 * i for i in range(n)]


def records(
    train: Sequence[float],
    dev: Sequence[float],
    *,
    grad_mean: Sequence[float] | None = HEALTHY_GRADS,
    grad_max: Sequence[float] | Callable[[int], Sequence[float]] | None = None,
) -> list[Record]:
    """Per-epoch dicts shaped like `EpochResult.to_dict()`.

    `grad_max` defaults to twice `grad_mean`; a callable gives each epoch its own norms.
    """
    out = []
    for i, (train_loss, dev_loss) in enumerate(zip(train, dev, strict=True)):
        record: Record = {
            "epoch": i,
            "train_loss": train_loss,
            "train_accuracy": math.exp(-train_loss),
            "dev_loss": dev_loss,
            "dev_accuracy": math.exp(-dev_loss),
            "lr": 0.01,
            "seconds": 1.5,
        }
        if grad_mean is not None:
            maxima = grad_max(i) if callable(grad_max) else grad_max or [2 * g for g in grad_mean]
            record["grad_norm_mean"] = dict(zip(LAYERS, grad_mean, strict=True))
            record["grad_norm_max"] = dict(zip(LAYERS, maxima, strict=True))
        out.append(record)
    return out


def good_fit_run(n: int = 10) -> list[Record]:
    return records(decay(CHANCE, 0.1, 1.0, n), decay(CHANCE, 0.15, 1.0, n))


def still_improving_run() -> list[Record]:
    return records(decay(CHANCE, 0.1, 0.3, 5), decay(CHANCE, 0.2, 0.3, 5))


def underfitting_run() -> list[Record]:
    return records(decay(CHANCE, 2.0, 1.0, 10), decay(CHANCE, 2.05, 1.0, 10))


def overfitting_run() -> list[Record]:
    return records(decay(CHANCE, 0.01, 0.8, 11), u_shape(11))


def diverged_run() -> list[Record]:
    return records([CHANCE, 1.5, math.nan], [CHANCE, 1.6, math.nan])


def vanishing_run() -> list[Record]:
    return records(*[decay(CHANCE, 0.1, 1.0, 10)] * 2, grad_mean=(1e-6, 1e-3, 1e-1))


def exploding_run() -> list[Record]:
    return records(*[decay(CHANCE, 0.1, 1.0, 10)] * 2, grad_max=(1e5, 1e4, 1e3))


RUNS = {
    "diverged": diverged_run,
    "underfitting": underfitting_run,
    "overfitting": overfitting_run,
    "good_fit": good_fit_run,
    "still_improving": still_improving_run,
    "vanishing_gradients": vanishing_run,
    "exploding_gradients": exploding_run,
}


def test_every_label_has_a_run() -> None:
    assert set(RUNS) == set(LABELS)


# --- each label ------------------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_each_run_gets_its_label(label: str) -> None:
    assert label in diagnose(RUNS[label]()).labels


def test_good_fit_is_the_only_label_of_a_converged_run() -> None:
    assert diagnose(good_fit_run()).labels == ("good_fit",)


def test_still_improving_coexists_with_good_fit() -> None:
    assert diagnose(still_improving_run()).labels == ("good_fit", "still_improving")


def test_flat_high_losses_are_underfitting_and_not_still_improving() -> None:
    assert diagnose(underfitting_run()).labels == ("underfitting",)


def test_high_but_falling_losses_are_underfitting_and_still_improving() -> None:
    run = records(decay(CHANCE, 1.0, 0.2, 4), decay(CHANCE, 1.0, 0.2, 4))
    assert diagnose(run).labels == ("underfitting", "still_improving")


@pytest.mark.parametrize(("loss", "num_classes", "expected"), [(0.6, 2, True), (0.6, 10, False)])
def test_underfitting_is_relative_to_chance_level(
    loss: float, num_classes: int, expected: bool
) -> None:
    run = records([loss + 0.1, loss], [loss + 0.1, loss])
    assert ("underfitting" in diagnose(run, num_classes=num_classes).labels) is expected


def test_overfitting_reports_the_best_epoch_and_the_rise() -> None:
    numbers = diagnose(overfitting_run()).numbers
    dev = u_shape(11)
    assert numbers["best_epoch"] == 5
    assert numbers["dev_rise"] == pytest.approx(dev[-1] - min(dev))
    assert numbers["gap_final"] > numbers["gap_at_best"] > 0


def test_overfitting_excludes_good_fit_and_still_improving() -> None:
    assert diagnose(overfitting_run()).labels == ("overfitting",)


def test_small_dev_wiggle_is_not_overfitting() -> None:
    dev = [*decay(CHANCE, 0.3, 1.0, 9), 0.3 * 1.03]  # 3% above the minimum: noise
    assert diagnose(records(decay(CHANCE, 0.1, 1.0, 10), dev)).labels == ("good_fit",)


def test_a_rise_within_the_epoch_to_epoch_noise_is_not_overfitting() -> None:
    # A small dev set: the dev loss jumps by about 0.15 from epoch to epoch around its floor,
    # so ending 0.1 above a lucky minimum says nothing.
    dev = [*decay(CHANCE, 0.3, 1.0, 6), 0.45, 0.28, 0.46, 0.3, 0.44, 0.38]
    run = records(decay(CHANCE, 0.1, 0.5, 12), dev)
    assert diagnose(run).numbers["dev_noise"] == pytest.approx(0.15, abs=0.03)
    assert "overfitting" not in diagnose(run).labels
    noise_blind = Thresholds(overfit_min_noise_multiple=0.0)
    assert "overfitting" in diagnose(run, thresholds=noise_blind).labels


def test_rising_dev_loss_with_flat_train_loss_is_not_overfitting() -> None:
    train = decay(CHANCE, 0.1, 1.0, 6)
    train += [train[-1]] * 4
    dev = [*decay(CHANCE, 0.3, 1.0, 6), 0.35, 0.4, 0.45, 0.5]
    assert "overfitting" not in diagnose(records(train, dev)).labels


def test_zero_dev_loss_is_not_overfitting() -> None:
    assert diagnose(records([1.0, 0.5], [0.0, 0.0])).labels == ("good_fit",)


@pytest.mark.parametrize(
    ("train", "dev"),
    [
        ([CHANCE, 1.0, math.nan], [CHANCE, 1.1, 1.2]),
        ([CHANCE, 1.0, 0.9], [CHANCE, 1.1, math.nan]),
        ([CHANCE, 1.0, math.inf], [CHANCE, 1.1, math.inf]),
        ([CHANCE, 1.0, 50.0], [CHANCE, 1.1, 60.0]),  # finite, but 20 times chance
    ],
    ids=["nan_train", "nan_dev", "inf", "huge"],
)
def test_bad_loss_is_diverged_at_its_epoch(train: list[float], dev: list[float]) -> None:
    diagnosis = diagnose(records(train, dev))
    assert diagnosis.labels == ("diverged",)
    assert diagnosis.numbers["diverged_epoch"] == 2


def test_trainer_flag_is_diverged_at_the_last_epoch() -> None:
    diagnosis = diagnose(good_fit_run(), diverged=True)
    assert diagnosis.labels == ("diverged",)
    assert diagnosis.numbers["diverged_epoch"] == 9


def test_diverged_run_still_gets_gradient_labels() -> None:
    run = records(
        [CHANCE, math.nan],
        [CHANCE, math.nan],
        grad_max=lambda i: (1.0, 1.0, 1.0) if i == 0 else (math.inf, math.nan, math.nan),
    )
    assert diagnose(run).labels == ("diverged", "exploding_gradients")


@pytest.mark.parametrize(("first", "expected"), [(1e-3, True), (2e-3, False), (1e-1, False)])
def test_vanishing_gradients_needs_two_orders_of_magnitude(first: float, expected: bool) -> None:
    run = records(*[decay(CHANCE, 0.1, 1.0, 5)] * 2, grad_mean=(first, 0.01, 0.1))
    assert ("vanishing_gradients" in diagnose(run).labels) is expected


def test_vanishing_ratio_is_the_geometric_mean_over_epochs() -> None:
    ratios = iter([1e-1, 1e-3, 1e-5])
    run = [
        {**record, "grad_norm_mean": {"a": next(ratios), "b": 1.0}}
        for record in records(*[decay(CHANCE, 0.1, 1.0, 3)] * 2)
    ]
    numbers = diagnose(run).numbers
    assert numbers["grad_ratio_first_last_log10"] == pytest.approx(-3.0)
    assert numbers["grad_ratio_first_last"] == pytest.approx(1e-3)


def test_zero_first_layer_gradient_is_vanishing_with_finite_numbers() -> None:
    diagnosis = diagnose(records(*[decay(CHANCE, 0.1, 1.0, 3)] * 2, grad_mean=(0.0, 0.1, 0.1)))
    assert "vanishing_gradients" in diagnosis.labels
    assert math.isfinite(diagnosis.numbers["grad_ratio_first_last_log10"])


def test_exploding_gradients_reports_the_largest_norm() -> None:
    assert diagnose(exploding_run()).numbers["grad_norm_max"] == 1e5


def test_overflowed_gradient_is_exploding_with_finite_numbers() -> None:
    diagnosis = diagnose(records([1.0], [1.1], grad_max=(math.inf, math.nan, 1.0)))
    assert "exploding_gradients" in diagnosis.labels
    assert all(math.isfinite(value) for value in diagnosis.numbers.values())
    assert "nan" not in diagnosis.note()


def test_gradient_growth_by_orders_of_magnitude_is_exploding() -> None:
    run = records(*[decay(CHANCE, 0.1, 1.0, 4)] * 2, grad_max=lambda i: (0.5 * 10**i,) * 3)
    assert "exploding_gradients" in diagnose(run).labels  # 0.5 -> 500, below 1e3 throughout


def test_tiny_gradients_growing_away_from_zero_are_not_exploding() -> None:
    run = records(*[decay(CHANCE, 0.1, 1.0, 4)] * 2, grad_max=lambda i: (1e-6 * 10**i,) * 3)
    assert "exploding_gradients" not in diagnose(run).labels


def test_healthy_gradients_get_no_gradient_label() -> None:
    assert not {"vanishing_gradients", "exploding_gradients"} & set(diagnose(good_fit_run()).labels)


# --- edges ---------------------------------------------------------------------------------


@pytest.mark.parametrize("grads", [None, {}], ids=["missing", "empty"])
def test_runs_without_grad_norms_skip_gradient_figures(grads: dict[str, float] | None) -> None:
    run = [{**record, "grad_norm_mean": grads, "grad_norm_max": grads} for record in good_fit_run()]
    diagnosis = diagnose(run)
    assert diagnosis.labels == ("good_fit",)
    assert not [key for key in diagnosis.numbers if key.startswith("grad")]


def test_single_epoch_is_diagnosed_without_still_improving() -> None:
    diagnosis = diagnose(good_fit_run(1))
    assert diagnosis.labels == ("underfitting",)
    assert diagnosis.numbers["epochs"] == 1


def test_empty_run_is_an_error() -> None:
    with pytest.raises(ValueError, match="no epochs"):
        diagnose([])


def test_record_without_dev_loss_is_an_error() -> None:
    run = good_fit_run(3)
    del run[1]["dev_loss"]
    with pytest.raises(ValueError, match="epoch record 1 has no 'dev_loss'"):
        diagnose(run)


def test_thresholds_change_the_verdict() -> None:
    strict = Thresholds(vanishing_min_orders=6.0)
    assert "vanishing_gradients" not in diagnose(vanishing_run(), thresholds=strict).labels


# --- the Diagnosis value -------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_numbers_are_finite_json_floats(label: str) -> None:
    numbers = diagnose(RUNS[label]()).numbers
    assert all(type(value) is float and math.isfinite(value) for value in numbers.values())
    assert json.loads(json.dumps(numbers, allow_nan=False)) == numbers


@pytest.mark.parametrize("label", sorted(set(LABELS) - {"diverged"}))
def test_numbers_always_hold_the_curve_figures(label: str) -> None:
    required = {"epochs", "best_epoch", "best_dev_loss", "final_train_loss", "final_dev_loss"}
    assert required | {"gap_at_best"} <= set(diagnose(RUNS[label]()).numbers)


@pytest.mark.parametrize("label", LABELS)
def test_labels_follow_the_labels_order(label: str) -> None:
    labels = diagnose(RUNS[label]()).labels
    assert list(labels) == sorted(labels, key=LABELS.index)


@pytest.mark.parametrize("label", LABELS)
def test_dict_round_trip(label: str) -> None:
    diagnosis = diagnose(RUNS[label]())
    assert Diagnosis.from_dict(json.loads(json.dumps(diagnosis.to_dict()))) == diagnosis


def test_from_dict_rejects_unknown_labels() -> None:
    with pytest.raises(ValueError, match="unknown diagnosis labels"):
        Diagnosis.from_dict({"labels": ["haunted"], "numbers": {}})


@pytest.mark.parametrize("label", LABELS)
def test_summary_is_one_line_naming_each_label(label: str) -> None:
    diagnosis = diagnose(RUNS[label]())
    summary = diagnosis.summary()
    assert "\n" not in summary
    assert all(name.replace("_", " ") in summary for name in diagnosis.labels)
    assert "nan" not in summary


@pytest.mark.parametrize("label", LABELS)
def test_note_explains_each_label_with_its_numbers(label: str) -> None:
    diagnosis = diagnose(RUNS[label]())
    note = diagnosis.note()
    assert all(f"**{name.replace('_', ' ')}**" in note for name in diagnosis.labels)
    assert "nan" not in note


def test_summary_shows_the_overfitting_figures() -> None:
    assert diagnose(overfitting_run()).summary() == "overfitting (dev loss up 0.11 after epoch 5)"
