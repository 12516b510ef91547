"""Pure functions of epoch records: the learning-curve diagnosis and the learning-curve picture."""

from __future__ import annotations

from studies.analysis._ablation import (
    CellRow,
    ablation_table,
    holm,
    mean_interval,
    plot_ablation,
)
from studies.analysis._curves import curve_axis, plot_learning_curves, plot_lr_ranges
from studies.analysis._diagnosis import (
    LABELS,
    Diagnosis,
    Thresholds,
    chance_loss,
    diagnose,
    epoch_scores,
)
from studies.analysis._size_curve import (
    SizePoint,
    SizeThresholds,
    chance_error,
    plot_size_curve,
    read_size_curve,
)

__all__ = [
    "LABELS",
    "CellRow",
    "Diagnosis",
    "SizePoint",
    "SizeThresholds",
    "Thresholds",
    "ablation_table",
    "chance_error",
    "chance_loss",
    "curve_axis",
    "diagnose",
    "epoch_scores",
    "holm",
    "mean_interval",
    "plot_ablation",
    "plot_learning_curves",
    "plot_lr_ranges",
    "plot_size_curve",
    "read_size_curve",
]
