"""`Arrays`: a data set as read, before it is split, standardised and moved to the device."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, for caches
class Arrays:
    """A data set as read and checked: inputs (N, ...) and targets.

    Targets are int64 class numbers (N,) for classification and float64 (N, k) for regression.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    scale: float  # divide raw inputs by this (255 for 8-bit images, 16 for digits)
    # what else identifies the data: CSV columns, the loader's file and content hash
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # inputs without labels (N_u, ...) shaped like x_train's rows: only pre-training uses them
    x_unlabeled: np.ndarray | None = None
