"""Reads a trial's learning curves the way the lecture does, and names what went wrong.

`diagnose` turns the per-epoch records of one training run (`EpochResult.to_dict()`) into a
`Diagnosis`: a few labels from `LABELS` and the figures behind them. Every rule reads its
figures from `Diagnosis.numbers`, so a reader of a note can check each label by hand.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LABELS = (
    "diverged",
    "underfitting",
    "overfitting",
    "good_fit",
    "still_improving",
    "vanishing_gradients",
    "exploding_gradients",
)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Every cut-off `diagnose` uses. Relative cut-offs are fractions, not percentages."""

    # "High" loss: at least this fraction of the chance-level loss ln(K). For K = 10 that is
    # 1.15 nats, i.e. the right class gets on average (geometric mean) under 32% probability.
    underfit_loss_fraction: float = 0.5
    # A train loss this many times ln(K) means training made the model far worse than guessing,
    # even if every loss stayed finite.
    diverged_loss_factor: float = 10.0
    # Rise of the last dev loss above its minimum, relative to that minimum; smaller rises are
    # epoch-to-epoch noise of a dev set of a few thousand examples.
    overfit_min_dev_rise: float = 0.05
    # ... and by more than this many times the dev loss's typical epoch-to-epoch change (the
    # median absolute change): on a dev set of a few hundred examples the last epoch of a noisy
    # but flat curve often lies well above a lucky minimum.
    overfit_min_noise_multiple: float = 2.0
    # Fall of the train loss after the best dev epoch, relative to its value there, needed to
    # say "train loss kept falling" (a flat train loss with a rising dev loss is noise or a
    # schedule effect, not memorisation).
    overfit_min_train_drop: float = 0.01
    # Fall of the dev loss in the last epoch, relative to the epoch before, that still counts as
    # improving: below 1% an extra epoch is unlikely to be worth its time.
    improving_min_gain: float = 0.01
    # Orders of magnitude (log10) by which the first layer's mean gradient norm must trail the
    # last layer's: 2 means 100x smaller.
    vanishing_min_orders: float = 2.0
    # A per-step gradient norm above this is exploding: healthy cross-entropy networks see norms
    # of about 0.01 to 10.
    exploding_max_norm: float = 1e3
    # Orders of magnitude by which the largest gradient norm may grow from the first epoch to the
    # last before it counts as exploding ...
    exploding_min_growth_orders: float = 2.0
    # ... provided it ends at least this large: tiny norms growing away from zero are a network
    # recovering from vanishing gradients, not exploding ones.
    exploding_growth_min_norm: float = 1.0
    # Gradient norms below this are raised to it, so that an exactly-zero gradient still gives a
    # finite logarithm.
    grad_norm_floor: float = 1e-12
    # "High" against what the study's best trials reach: a best dev loss this many times the
    # best trial's ...
    underfit_reference_factor: float = 3.0
    # ... with the train loss "close" to it: a train-dev gap at most this share of the dev loss
    # (the lecture's underfitting: both curves plateau, close and high).
    underfit_close_fraction: float = 0.3


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The labels of one run, in `LABELS` order, and the figures behind them.

    Attributes:
        labels: Names from `LABELS`; `"good_fit"` when neither diverged, underfitting nor
            overfitting applies.
        numbers: Finite floats only (JSON-ready); a figure that would be nan or inf, such as the
            final loss of a diverged run, is left out.
    """

    labels: tuple[str, ...]
    numbers: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """`{"labels": [...], "numbers": {...}}`, ready for JSON or a trial's user attrs."""
        return {"labels": list(self.labels), "numbers": dict(self.numbers)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Diagnosis:
        """Inverse of `to_dict`.

        Raises:
            ValueError: A label is not in `LABELS`.
        """
        labels = tuple(values["labels"])
        unknown = [label for label in labels if label not in LABELS]
        if unknown:
            raise ValueError(f"unknown diagnosis labels {unknown}; known: {list(LABELS)}")
        numbers = {str(key): float(value) for key, value in values["numbers"].items()}
        return cls(labels=labels, numbers=numbers)

    def summary(self) -> str:
        """One short line for tables, e.g. "overfitting (dev loss up 0.21 after epoch 4)"."""
        figures = _Figures(self.numbers)
        return ", ".join(_SUMMARIES[label].format_map(figures) for label in self.labels)

    def note(self) -> str:
        """A few lines of Markdown explaining each label with its numbers."""
        figures = _Figures(self.numbers)
        title = ", ".join(label.replace("_", " ") for label in self.labels)
        lines = [f"**Diagnosis: {title}**", ""]
        for label in self.labels:
            text = _NOTES[label].format_map(figures)
            lines.append(f"- **{label.replace('_', ' ')}**: {text}")
        if "reference_dev_loss" in self.numbers:
            lines.append(_REFERENCE.format_map(figures))
        else:
            lines.append("- high and low are judged against chance only (no study to compare)")
        return "\n".join(lines)


class _Figures(dict[str, float]):
    """Numbers for `str.format_map`; a figure a rule did not produce reads as nan."""

    def __missing__(self, key: str) -> float:
        return math.nan


_SUMMARIES = {
    "diverged": "diverged (epoch {diverged_epoch:.0f})",
    "underfitting": "underfitting (train loss {final_train_loss:.2f}, chance {chance_loss:.2f})",
    "overfitting": "overfitting (dev loss up {dev_rise:.2f} after epoch {best_epoch:.0f})",
    "good_fit": "good fit (dev loss {best_dev_loss:.2f} at epoch {best_epoch:.0f})",
    "still_improving": "still improving (dev loss -{last_dev_improvement:.1%} in last epoch)",
    "vanishing_gradients": "vanishing gradients (first/last layer {grad_ratio_first_last:.0e})",
    "exploding_gradients": "exploding gradients (max norm {grad_norm_max:.1e})",
}

_REFERENCE = (
    "- against the study: best dev loss {best_dev_loss:.3f} is {dev_loss_vs_reference:.1f}x "
    "the study's best trial's {reference_dev_loss:.3f}"
)

_NOTES = {
    "diverged": (
        "training broke down at epoch {diverged_epoch:.0f}: a loss became non-finite, rose far "
        "above the chance level {chance_loss:.2f}, or the trainer stopped the run. Lower the "
        "learning rate, clip gradients, or check the inputs for NaN."
    ),
    "underfitting": (
        "both losses stay high: final train loss {final_train_loss:.3f} and best dev loss "
        "{best_dev_loss:.3f}, against {chance_loss:.3f} for guessing. The model does not fit "
        "even the training data: add capacity, raise the learning rate, train longer, or "
        "regularise less."
    ),
    "overfitting": (
        "the dev loss was lowest at epoch {best_epoch:.0f} ({best_dev_loss:.3f}, train-dev gap "
        "{gap_at_best:.3f}), then rose by {dev_rise:.3f}, more than its epoch-to-epoch noise "
        "({dev_noise:.3f}), while the train loss kept falling to {final_train_loss:.3f} (final "
        "gap {gap_final:.3f}). Stop earlier, or add "
        "regularisation (weight decay, dropout, augmentation) or data."
    ),
    "good_fit": (
        "neither under- nor overfitting: best dev loss {best_dev_loss:.3f} at epoch "
        "{best_epoch:.0f}, train-dev gap {gap_at_best:.3f} there."
    ),
    "still_improving": (
        "the dev loss was lowest in the last epoch, {last_dev_improvement:.1%} below the epoch "
        "before: more epochs would probably help."
    ),
    "vanishing_gradients": (
        "the first layer's mean gradient norm is {grad_ratio_first_last:.1e} times the last "
        "layer's (10^{grad_ratio_first_last_log10:.1f}), so the early layers barely learn. Try "
        "ReLU-like activations, He/Glorot initialisation, or batch norm."
    ),
    "exploding_gradients": (
        "a layer's gradient norm reached {grad_norm_max:.3g}; from the first epoch to the last "
        "the largest norm changed by a factor 10^{grad_norm_growth_log10:+.1f}. Lower the "
        "learning rate, clip gradients, or normalise the inputs."
    ),
}


def diagnose(
    epochs: Sequence[Mapping[str, Any]],
    *,
    diverged: bool = False,
    num_classes: int = 10,
    chance_loss: float | None = None,
    reference_loss: float | None = None,
    thresholds: Thresholds = Thresholds(),
) -> Diagnosis:
    """Labels one run from its per-epoch records.

    With K = `num_classes`, chance = ln(K) (the loss of a uniform guess) and t = `thresholds`,
    the dev loss's minimum at the "best epoch":

    - diverged: `diverged` is true, or in some epoch a loss is nan/inf or the train loss exceeds
      `t.diverged_loss_factor` * chance. The other curve labels are then skipped, and
      `diverged_epoch` is that first bad epoch (the last one when only the flag is set).
    - underfitting: the final train loss and the best dev loss are both at least
      `t.underfit_loss_fraction` * chance. The train-dev gap is not a condition (a high train
      loss means the model does not fit, whatever dev does), nor is flatness: a high but still
      falling run gets both underfitting and still_improving. With a `reference_loss` (the
      study's best dev loss), also when the best dev loss is at least
      `t.underfit_reference_factor` times it and the train loss is close to the dev loss
      (gap at most `t.underfit_close_fraction` of it): both curves high, for this study, and
      close, as the lecture reads them, though far below chance (a 91% MNIST run among 98.5%
      ones).
    - overfitting: the last dev loss is above its minimum by more than `t.overfit_min_dev_rise`
      of it and by more than `t.overfit_min_noise_multiple` times `dev_noise` (the median
      absolute change of the dev loss from one epoch to the next), and the train loss fell
      after the best epoch by more than `t.overfit_min_train_drop` of its value there.
    - good_fit: none of the three above.
    - still_improving: the last epoch is the best one and its dev loss is at least
      `t.improving_min_gain` below the epoch before's (needs two epochs).
    - vanishing_gradients: the first layer's `grad_norm_mean` trails the last layer's by at
      least `t.vanishing_min_orders` orders of magnitude, as the mean over epochs of
      log10(first / last): the geometric mean of the ratio over the whole run, since early
      layers that stay starved all run long are the harm, and one odd epoch should not decide.
    - exploding_gradients: some `grad_norm_max` exceeds `t.exploding_max_norm` (+inf counts as
      the largest float), or the per-epoch largest norm grew by `t.exploding_min_growth_orders`
      orders from the first epoch to the last and ended above `t.exploding_growth_min_norm`. A
      nan norm is the result of a nan loss, not evidence of growth, and is ignored.

    Gradient labels are read even for a diverged run, and skipped for epochs without grad-norm
    dicts. Epoch numbers come from each record's `"epoch"`, or its position if absent.

    Args:
        epochs: Records oldest first, each with `train_loss` and `dev_loss` and optionally
            `epoch`, `train_accuracy`, `dev_accuracy`, `grad_norm_mean` and `grad_norm_max`
            (layer name to norm, input layer first).
        diverged: The trainer's own verdict that the run diverged.
        num_classes: K, for the chance-level loss ln(K) of a classifier.
        chance_loss: The chance-level loss itself, instead of ln(K): for a regression, the
            variance of the training targets (what predicting their mean scores).
        reference_loss: The best dev loss the study's trials reach, when the run is part of
            a study: "high" is then judged against it too (see underfitting above).
        thresholds: The cut-offs.

    Returns:
        The labels, in `LABELS` order, and their numbers.

    Raises:
        ValueError: `epochs` is empty, a record lacks a loss, `num_classes` is below 2, or
            `chance_loss` is not a positive number.
    """
    if not epochs:
        raise ValueError("cannot diagnose a run with no epochs: `epochs` is empty")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if chance_loss is not None and not (math.isfinite(chance_loss) and chance_loss > 0):
        raise ValueError(f"chance_loss must be a positive number, got {chance_loss}")
    chance = math.log(num_classes) if chance_loss is None else chance_loss
    numbers = _curve_numbers(epochs, chance, thresholds)
    if reference_loss is not None and math.isfinite(reference_loss) and reference_loss > 0:
        numbers["reference_dev_loss"] = reference_loss
    if diverged and "diverged_epoch" not in numbers:
        numbers["diverged_epoch"] = float(epochs[-1].get("epoch", len(epochs) - 1))
    numbers.update(_vanishing_numbers(epochs, thresholds))
    numbers.update(_exploding_numbers(epochs, thresholds))
    labels = _curve_labels(numbers, thresholds) | _gradient_labels(numbers, thresholds)
    return Diagnosis(labels=tuple(label for label in LABELS if label in labels), numbers=numbers)


def _curve_numbers(
    epochs: Sequence[Mapping[str, Any]], chance: float, t: Thresholds
) -> dict[str, float]:
    ids = np.array([record.get("epoch", i) for i, record in enumerate(epochs)], dtype=float)
    train = _column(epochs, "train_loss")
    dev = _column(epochs, "dev_loss")
    numbers: dict[str, float] = {"epochs": float(len(epochs)), "chance_loss": chance}
    with np.errstate(all="ignore"):  # nan/inf losses give nan/inf figures, which _put drops
        _put(numbers, "final_train_loss", train[-1])
        _put(numbers, "final_dev_loss", dev[-1])
        _put(numbers, "gap_final", dev[-1] - train[-1])
        for key in ("train_accuracy", "dev_accuracy"):
            if all(key in record for record in epochs):
                _put(numbers, f"final_{key}", _column(epochs, key)[-1])
        if np.isfinite(dev).any():
            best = int(np.argmin(np.where(np.isfinite(dev), dev, np.inf)))
            _put(numbers, "best_epoch", ids[best])
            _put(numbers, "best_dev_loss", dev[best])
            _put(numbers, "train_loss_at_best", train[best])
            _put(numbers, "gap_at_best", dev[best] - train[best])
            _put(numbers, "dev_rise", dev[-1] - dev[best])
        if len(dev) >= 2:
            _put(numbers, "last_dev_improvement", (dev[-2] - dev[-1]) / dev[-2])
            steps = np.abs(np.diff(dev))
            if np.isfinite(steps).any():
                _put(numbers, "dev_noise", float(np.median(steps[np.isfinite(steps)])))
        broken = ~np.isfinite(train + dev) | (train > t.diverged_loss_factor * chance)
    if broken.any():
        numbers["diverged_epoch"] = float(ids[int(np.argmax(broken))])
    return numbers


def _curve_labels(numbers: dict[str, float], t: Thresholds) -> set[str]:
    if "diverged_epoch" in numbers:
        return {"diverged"}
    labels = set()
    high = t.underfit_loss_fraction * numbers["chance_loss"]
    if numbers["final_train_loss"] >= high and numbers["best_dev_loss"] >= high:
        labels.add("underfitting")
    reference = numbers.get("reference_dev_loss")
    if reference is not None:
        numbers["dev_loss_vs_reference"] = numbers["best_dev_loss"] / reference
        close = abs(numbers["gap_at_best"]) <= t.underfit_close_fraction * numbers["best_dev_loss"]
        if numbers["dev_loss_vs_reference"] >= t.underfit_reference_factor and close:
            labels.add("underfitting")
    train_drop = numbers["train_loss_at_best"] - numbers["final_train_loss"]
    if (
        numbers["dev_rise"] > t.overfit_min_dev_rise * numbers["best_dev_loss"]
        and numbers["dev_rise"] > t.overfit_min_noise_multiple * numbers.get("dev_noise", 0.0)
        and train_drop > t.overfit_min_train_drop * numbers["train_loss_at_best"]
    ):
        labels.add("overfitting")
    if not labels:
        labels.add("good_fit")
    gain = numbers.get("last_dev_improvement", math.nan)
    if numbers["dev_rise"] == 0 and gain >= t.improving_min_gain:
        labels.add("still_improving")
    return labels


def _vanishing_numbers(epochs: Sequence[Mapping[str, Any]], t: Thresholds) -> dict[str, float]:
    orders = []
    for norms in _layer_norms(epochs, "grad_norm_mean"):
        first, last = norms[0], norms[-1]
        if len(norms) >= 2 and math.isfinite(first) and math.isfinite(last):
            orders.append(math.log10(max(first, t.grad_norm_floor) / max(last, t.grad_norm_floor)))
    if not orders:
        return {}
    mean_orders = float(np.mean(orders))
    return {"grad_ratio_first_last_log10": mean_orders, "grad_ratio_first_last": 10**mean_orders}


def _exploding_numbers(epochs: Sequence[Mapping[str, Any]], t: Thresholds) -> dict[str, float]:
    # An overflowed (+inf) norm is kept as the largest float: JSON-ready, and above any threshold.
    largest = [
        min(max(finite), sys.float_info.max)
        for norms in _layer_norms(epochs, "grad_norm_max")
        if (finite := [norm for norm in norms if not math.isnan(norm)])
    ]
    if not largest:
        return {}
    first, last = (max(norm, t.grad_norm_floor) for norm in (largest[0], largest[-1]))
    return {
        "grad_norm_max": max(largest),
        "grad_norm_final": largest[-1],
        "grad_norm_growth_log10": math.log10(last) - math.log10(first),
    }


def _gradient_labels(numbers: dict[str, float], t: Thresholds) -> set[str]:
    labels = set()
    if numbers.get("grad_ratio_first_last_log10", math.nan) <= -t.vanishing_min_orders:
        labels.add("vanishing_gradients")
    grew = (
        numbers.get("grad_norm_growth_log10", math.nan) >= t.exploding_min_growth_orders
        and numbers["grad_norm_final"] >= t.exploding_growth_min_norm
    )
    if grew or numbers.get("grad_norm_max", math.nan) > t.exploding_max_norm:
        labels.add("exploding_gradients")
    return labels


def _layer_norms(epochs: Sequence[Mapping[str, Any]], key: str) -> list[list[float]]:
    """Per epoch that has `key`, its layers' norms from the input layer to the output layer."""
    return [[float(n) for n in record[key].values()] for record in epochs if record.get(key)]


def _column(epochs: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    try:
        return np.array([float(record[key]) for record in epochs])
    except KeyError:
        missing = next(i for i, record in enumerate(epochs) if key not in record)
        raise ValueError(f"epoch record {missing} has no '{key}'") from None


def _put(numbers: dict[str, float], key: str, value: float) -> None:
    """Stores `value` only if it is finite, so that `numbers` stays JSON-ready."""
    if math.isfinite(value):
        numbers[key] = float(value)


def chance_loss(data: Mapping[str, Any]) -> float:
    """The loss of a model that learnt nothing, from a data set's identity (`Data.identity`).

    ln(classes) for a classifier (a uniform guess); for a regression the training targets'
    variance in the units of the loss (predicting their mean), 1.0 once standardised.
    """
    if data.get("task") == "regression":
        variance = float(data.get("target_variance", 1.0))
        return variance if math.isfinite(variance) and variance > 0 else 1.0
    return math.log(max(2, int(data.get("classes", 10))))


def epoch_scores(record: Mapping[str, Any]) -> str:
    """One epoch's dev and train scores in words: accuracy, or a regression's RMSE and R²."""
    dev_loss, train_loss = float(record["dev_loss"]), float(record["train_loss"])
    accuracy = float(record.get("dev_accuracy", math.nan))
    if math.isnan(accuracy) and not math.isnan(float(record.get("dev_rmse", math.nan))):
        return (
            f"dev loss {dev_loss:.4f} (MSE), dev RMSE {float(record['dev_rmse']):.4g}, dev R² "
            f"{float(record['dev_r2']):.4f} (train loss {train_loss:.4f})"
        )
    return (
        f"dev loss {dev_loss:.4f}, dev accuracy {100 * accuracy:.2f}% (train loss "
        f"{train_loss:.4f}, train accuracy {100 * float(record['train_accuracy']):.2f}%)"
    )
