"""Standardisation statistics: computed on the training split only, stored, and re-applied.

Two kinds, both JSON-ready dicts that `load_data(..., standardization=...)` applies again:

- ``{"per_feature": false, "x_mean": m, "x_std": s}``: one mean and deviation over every
  training input (after dividing by the data set's scale); the default, as it always was.
- ``{"per_feature": true, "x_mean": [...], "x_std": [...]}``: one per feature (per column of
  flat data, per pixel and channel of images), with ``"y_mean"`` and ``"y_std"`` per target
  column for regression. A constant feature (or target) gets deviation 1.

Fitting and applying go through the same stored form, so applying stored statistics gives
exactly the tensors the original run trained on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer._mnist import DataUnavailableError


def fit_stats(x: np.ndarray, y: np.ndarray | None, *, per_feature: bool) -> dict[str, Any]:
    """Statistics of the training inputs `x` (already scaled, float32) and, for regression with
    `per_feature`, of the training targets `y` (N, k)."""
    if not per_feature:
        return {"per_feature": False, "x_mean": float(x.mean()), "x_std": float(x.std()) or 1.0}
    stats: dict[str, Any] = {"per_feature": True, **_columns("x", x)}
    if y is not None:
        stats.update(_columns("y", y))
    return stats


def apply_x(stats: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Standardised float32 inputs; `x` is already scaled, float32.

    Raises:
        DataUnavailableError: the statistics were made for inputs of another shape.
    """
    if not stats["per_feature"]:
        return (x - stats["x_mean"]) / stats["x_std"]  # float32, as it always was
    mean, std = _vectors(stats, "x", x.shape[1:])
    return ((x - mean) / std).astype(np.float32)


def apply_y(stats: dict[str, Any], y: np.ndarray) -> np.ndarray:
    """Standardised float32 targets (N, k) when the statistics hold target columns."""
    if "y_mean" not in stats:
        return y.astype(np.float32)
    mean, std = _vectors(stats, "y", y.shape[1:])
    return ((y - mean) / std).astype(np.float32)


def check_stats(stats: dict[str, Any], *, per_feature: bool, regression: bool) -> None:
    """Stored statistics must be of the kind the config asks for.

    Raises:
        DataUnavailableError: they are not.
    """
    if not isinstance(stats, dict) or not {"per_feature", "x_mean", "x_std"} <= set(stats):
        raise DataUnavailableError(
            "stored standardization must hold per_feature, x_mean and x_std (as "
            "Data.standardization gives them)"
        )
    if bool(stats["per_feature"]) != per_feature:
        raise DataUnavailableError(
            f"the stored standardization is {'per feature' if stats['per_feature'] else 'global'}"
            f", but the config has standardize = {str(per_feature).lower()}"
        )
    if per_feature and regression and "y_mean" not in stats:
        raise DataUnavailableError(
            "the stored standardization has no target statistics (y_mean, y_std), which a "
            "standardised regression needs"
        )


def _columns(prefix: str, values: np.ndarray) -> dict[str, Any]:
    mean = values.mean(axis=0, dtype=np.float64)
    std = values.std(axis=0, dtype=np.float64)
    std[np.ptp(values, axis=0) == 0] = 1.0  # a constant feature: exactly 0 after centring
    return {f"{prefix}_mean": mean.tolist(), f"{prefix}_std": std.tolist()}


def _vectors(
    stats: dict[str, Any], prefix: str, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(stats[f"{prefix}_mean"], dtype=np.float64)
    std = np.asarray(stats[f"{prefix}_std"], dtype=np.float64)
    if mean.shape != shape or std.shape != shape:
        what = "inputs" if prefix == "x" else "targets"
        raise DataUnavailableError(
            f"the stored standardization is for {what} of shape {mean.shape}, but these "
            f"{what} have shape {shape}"
        )
    return mean, std
