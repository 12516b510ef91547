"""The learning-curve picture of one trial: loss and accuracy per epoch, best epoch marked.

Drawn with matplotlib's Agg backend (no display needed) into PNG bytes, for the trial's
artifact in optuna-dashboard and for `hpstudy report`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from trainer import EpochResult, LRRange, PretrainEpoch

# the legend entry of the hollow points inside the first epoch
PARTIAL_LEGEND = "inside epoch 0: a share of the training data"
LOG_SCALE_RATIO = 50.0  # losses spanning more than this factor get a log axis (diverged runs)


def plot_learning_curves(
    epochs: Sequence[EpochResult],
    *,
    best_epoch: int | None = None,
    title: str = "",
    pretraining: Sequence[PretrainEpoch] = (),
    folds: Sequence[Sequence[float]] = (),
) -> bytes:
    """A PNG with two panels: train/dev loss and train/dev accuracy (a regression: dev R²)
    against the epoch; with `pretraining`, a third panel before them shows its reconstruction
    loss, one line per layer, against the pre-training epochs (kept apart from the
    supervised ones).

    A curve with points inside the first epoch (`EpochResult.fraction` < 1) is drawn against
    the epochs trained instead (epoch + fraction: 0.11, 0.33, then 1, 2, ...), its partial
    points hollow, and the axis and the legend say so.

    Args:
        epochs: the trial's epochs, oldest first (a partial point before the epoch it lies
            in); non-finite values leave gaps.
        best_epoch: the epoch model selection kept, marked in both panels.
        title: the picture's title, e.g. the trial number and its diagnosis.
        pretraining: the run's pre-training epochs (`TrainConfig.pretrain_epochs`).
        folds: a trial of several networks (folds, repeats): each network's dev loss per
            whole epoch, drawn thin and pale behind the merged curves (their mean).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    x, xlabel = curve_axis(epochs)
    partial = any(record.partial for record in epochs)
    shift = 1 if partial else 0  # epoch e ends at e + 1 epochs trained
    # Fixed margins: a layout engine would double the drawing time, paid once per trial.
    figure = Figure(figsize=(13 if pretraining else 9, 3.4), dpi=100)
    FigureCanvasAgg(figure)  # Agg draws without a display, and leaves pyplot's backend alone
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.89, wspace=0.2)
    if pretraining:
        pre_axes, loss_axes, accuracy_axes = figure.subplots(1, 3)
        accuracy_axes.sharex(loss_axes)
        _plot_pretraining(pre_axes, pretraining)
    else:
        loss_axes, accuracy_axes = figure.subplots(1, 2, sharex=True)
    # A regression has no accuracy: its second panel shows the dev R² instead.
    regression = all(math.isnan(_finite(r.dev_accuracy)) for r in epochs) and any(
        not math.isnan(_finite(r.dev_r2)) for r in epochs
    )
    score = "r2" if regression else "accuracy"
    for i, curve in enumerate(folds):
        loss_axes.plot(
            [e + shift for e in range(len(curve))],
            [_finite(v) for v in curve],
            color="tab:orange",
            alpha=0.35,
            linewidth=0.8,
            label=f"dev loss of each of the {len(folds)} networks" if i == 0 else None,
        )
    for axes, kind in ((loss_axes, "loss"), (accuracy_axes, score)):
        for split in ("dev",) if kind == "r2" else ("train", "dev"):
            values = [_finite(record.metric(f"{split}_{kind}")) for record in epochs]
            shown = "R²" if kind == "r2" else kind
            (line,) = axes.plot(x, values, marker="o", markersize=3, label=f"{split} {shown}")
            if partial:
                inside = [(a, v) for a, v, r in zip(x, values, epochs, strict=True) if r.partial]
                axes.plot(
                    [a for a, _ in inside],
                    [v for _, v in inside],
                    "o",
                    markersize=7,
                    markerfacecolor="white",
                    color=line.get_color(),
                    zorder=3,
                )
        best_x = None if best_epoch is None else best_epoch + shift
        if best_x is not None and best_x in x:
            axes.axvline(best_x, color="grey", linestyle="--", linewidth=1)
            value = _finite(epochs[x.index(best_x)].metric(f"dev_{kind}"))
            if not math.isnan(value):
                axes.plot([best_x], [value], "*", color="black", markersize=11, zorder=3)
        axes.set_xlabel(xlabel)
        axes.set_ylabel("R²" if kind == "r2" else kind)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    losses = [
        v
        for record in epochs
        for v in (_finite(record.train_loss), _finite(record.dev_loss))
        if v > 0
    ]
    if losses and max(losses) / min(losses) > LOG_SCALE_RATIO:
        loss_axes.set_yscale("log")
    if regression:  # R² can be far below 0 early on; below -1 says nothing more
        accuracy_axes.set_ylim(bottom=max(-1.0, accuracy_axes.get_ylim()[0]), top=1.02)
    else:
        accuracy_axes.set_ylim(0.0, 1.02)
        accuracy_axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    if best_epoch is not None:
        loss_axes.plot([], [], "*", color="black", label=f"best epoch ({best_epoch})")
    if partial:
        loss_axes.plot([], [], "o", color="grey", markerfacecolor="white", label=PARTIAL_LEGEND)
    loss_axes.legend(fontsize="small")
    accuracy_axes.legend(fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _plot_pretraining(axes: Any, pretraining: Sequence[PretrainEpoch]) -> None:
    """Each layer's reconstruction loss against the pre-training epochs, counted on across
    layers (layer 2's first epoch follows layer 1's last); a trial of several networks (folds,
    repeats) draws each network's lines, one colour per layer."""
    layers = list(dict.fromkeys(record.layer for record in pretraining))
    members = sorted({record.member for record in pretraining})
    for member in members:
        own = [r for r in pretraining if r.member == member]
        for index, layer in enumerate(layers):
            points = [(i + 1, r.loss) for i, r in enumerate(own) if r.layer == layer]
            axes.plot(
                [x for x, _ in points],
                [_finite(v) for _, v in points],
                marker="o",
                markersize=3,
                color=f"C{index}",
                alpha=1.0 if len(members) == 1 else 0.6,
                label=layer.removesuffix(".weight") if member == members[0] else None,
            )
    axes.set_xlabel("pre-training epoch (layer by layer)")
    axes.set_ylabel("reconstruction loss (MSE)")
    several = f" ({len(members)} networks)" if len(members) > 1 else ""
    axes.set_title(f"pre-training{several}", fontsize="small")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")


def curve_axis(epochs: Sequence[EpochResult]) -> tuple[list[float], str]:
    """Where the learning-curve picture puts each result, and what its axis says: the epoch
    (from 0), or, for a curve with points inside the first epoch, the epochs trained (epoch +
    fraction: 0.11, 0.33, 1, 2, ...), so that a point at 1/9 lies before the first epoch."""
    if not any(record.partial for record in epochs):
        return [float(record.epoch) for record in epochs], "epoch"
    return [record.epochs_trained for record in epochs], "epochs trained"


def _finite(value: Any) -> float:
    """A float, or NaN (a gap in the line) for a missing or non-finite value."""
    if value is None:
        return math.nan
    value = float(value)
    return value if math.isfinite(value) else math.nan


def plot_lr_ranges(ranges: Mapping[str, LRRange], *, title: str = "") -> bytes:
    """A PNG of learning-rate range tests: smoothed training loss against the learning rate
    (log axis), one line per optimiser, its proposed search bounds shaded.

    Args:
        ranges: each optimiser's range test, by its name.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0.09, right=0.98, bottom=0.13, top=0.9)
    axes = figure.subplots()
    tops = []
    for index, (name, found) in enumerate(ranges.items()):
        color = f"C{index}"
        lrs, losses = list(found.lrs), [_finite(v) for v in found.losses]
        axes.plot(
            lrs,
            losses,
            color=color,
            label=f"{name}: search [{found.low:.2g}, {found.high:.2g}]",
        )
        axes.axvspan(found.low, found.high, color=color, alpha=0.08)
        finite = [v for v in losses if not math.isnan(v)]
        if finite:
            tops.append(finite[0])
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss (smoothed)")
    if tops:  # the diverging tail would squash the useful part of the curves
        axes.set_ylim(top=1.5 * max(tops))
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
