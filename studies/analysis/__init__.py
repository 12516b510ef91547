"""Pure functions of epoch records: the learning-curve diagnosis and the learning-curve picture."""

from __future__ import annotations

from studies.analysis._curves import plot_learning_curves
from studies.analysis._diagnosis import (
    LABELS,
    Diagnosis,
    Thresholds,
    chance_loss,
    diagnose,
    epoch_scores,
)

__all__ = [
    "LABELS",
    "Diagnosis",
    "Thresholds",
    "chance_loss",
    "diagnose",
    "epoch_scores",
    "plot_learning_curves",
]
