"""Learning curves over the training-set size, read as the lecture reads them.

Train and dev error measured on growing shares of the training set (the dev set fixed) tell
bias from variance:

- underfitting (high bias): both errors end close together and high, and the dev error has
  stopped falling: more data will not help; a bigger model or less regularisation will.
- overfitting (high variance): a wide gap between a low train error and the dev error, which
  more data narrows: more data (or regularisation) will help.
- good fit: both low and close.

Error is 1 - accuracy for a classifier and the loss (mean squared error) for a regression.
"""

from __future__ import annotations

import dataclasses
import io
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from studies.spec import SizePoint


@dataclasses.dataclass(frozen=True)
class SizeThresholds:
    """The cut-offs of `read_size_curve`; fractions, not percentages."""

    # "Close": a final train-dev gap at most this share of the dev error (or below min_gap).
    close_fraction: float = 0.25
    min_gap: float = 0.02
    # "Flat": the dev error fell by less than this share over the last step of size.
    flat_gain: float = 0.1
    # "High": a final dev error at least this share of the chance error (a guess's).
    high_fraction: float = 0.1


def read_size_curve(
    points: Sequence[SizePoint],
    *,
    chance_error: float,
    thresholds: SizeThresholds = SizeThresholds(),
) -> tuple[str, dict[str, float], str]:
    """(label, numbers, sentence): what the curves say, with the figures behind it.

    Args:
        points: by growing size; at least two.
        chance_error: the error of a guess (1 - 1/K for K classes; the target's variance
            for a regression), which sets what "high" means.
    """
    t = thresholds
    first, before, last = points[0], points[-2], points[-1]
    gap_first = first.dev_mean - first.train_mean
    gap = last.dev_mean - last.train_mean
    gain = (before.dev_mean - last.dev_mean) / before.dev_mean if before.dev_mean > 0 else 0.0
    numbers = {
        "final_train_error": last.train_mean,
        "final_dev_error": last.dev_mean,
        "final_gap": gap,
        "first_gap": gap_first,
        "last_dev_gain": gain,
        "chance_error": chance_error,
    }
    close = gap <= max(t.min_gap, t.close_fraction * last.dev_mean)
    flat = gain < t.flat_gain
    high = last.dev_mean >= t.high_fraction * chance_error
    sizes = f"{first.examples} to {last.examples} examples"
    if not close:
        if gap >= gap_first:
            advice = f"the gap did not narrow over {sizes}: regularise or simplify the model"
        elif flat:
            advice = (
                f"the gap narrowed from {gap_first:.4f} over {sizes}, but the dev error has "
                f"flattened ({gain:.1%} over the last step): regularisation will help more "
                f"than data"
            )
        else:
            advice = f"the gap narrowed from {gap_first:.4f} over {sizes}: more data will help"
        return (
            "overfitting",
            numbers,
            f"overfitting (high variance): at {last.examples} examples the dev error "
            f"{last.dev_mean:.4f} lies {gap:.4f} above the train error {last.train_mean:.4f}; "
            + advice,
        )
    if high and flat:
        return (
            "underfitting",
            numbers,
            f"underfitting (high bias): train and dev error end close ({last.train_mean:.4f} "
            f"and {last.dev_mean:.4f}) and high ({last.dev_mean / chance_error:.0%} of a "
            f"guess's {chance_error:.3f}), and the dev error fell only {gain:.1%} over the "
            f"last step: more data will not help; a bigger model, a higher learning rate, "
            f"more epochs or less regularisation may",
        )
    improving = "" if flat else f"; the dev error still fell {gain:.1%} over the last step"
    return (
        "good_fit",
        numbers,
        f"good fit: train and dev error end low and close ({last.train_mean:.4f} and "
        f"{last.dev_mean:.4f}, gap {gap:.4f}){improving}",
    )


def plot_size_curve(points: Sequence[SizePoint], *, title: str = "", error: str = "error") -> bytes:
    """A PNG: train and dev error (mean, with the range over repeats) against examples."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.9)
    axes = figure.subplots()
    x = [p.examples for p in points]
    for split, color in (("train", "C0"), ("dev", "C1")):
        series = [getattr(p, split) for p in points]
        means = [statistics.fmean(v) for v in series]
        axes.plot(x, means, marker="o", color=color, label=f"{split} {error}")
        axes.fill_between(
            x, [min(v) for v in series], [max(v) for v in series], color=color, alpha=0.2
        )
    axes.set_xscale("log")
    axes.set_xlabel("training examples")
    axes.set_ylabel(error)
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    if title:
        figure.suptitle(title, fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def chance_error(data: Mapping[str, Any]) -> float:
    """A guess's error from a data set's identity: 1 - 1/K, or the target's variance."""
    if data.get("task") == "regression":
        variance = float(data.get("target_variance", 1.0))
        return variance if math.isfinite(variance) and variance > 0 else 1.0
    return 1 - 1 / max(2, int(data.get("classes", 10)))
