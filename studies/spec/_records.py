"""What a study finds and keeps with it: an ablation's table, a learning curve over the size.

`hpstudy ablate` and `hpstudy learning-curve` compute these (`studies.analysis`) and keep
them as study attributes (`studies.storage.StudyAttrs`); `hpstudy report` reads them back.
The records live in the lowest layer because the layer that computes them and the layer that
stores them may not import each other. Each has the `to_dict` form stored since the first
version that kept it, and a `from_dict` that reads it back.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping
from typing import Any

Cell = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class CellRow:
    """One cell of an ablation."""

    cell: Cell  # the factors' values, in the factors' order
    n: int  # runs (seeds) with a finite value
    lost: int  # runs without one (diverged): left out of the mean, counted here
    mean: float
    low: float  # the 95% confidence interval of the mean (nan with a single run)
    high: float
    p_vs_best: float | None  # Holm-corrected paired t-test against the best (None: untestable)
    worse: bool  # significantly worse than the best cell at ALPHA

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the cell a list, a list value of a factor a list too."""
        cell = [list(v) if isinstance(v, tuple) else v for v in self.cell]
        return {**dataclasses.asdict(self), "cell": cell}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellRow:
        """The stored form; a list value of a factor (a layer list) comes back a tuple."""
        p = data["p_vs_best"]
        return cls(
            cell=tuple(tuple(v) if isinstance(v, list) else v for v in data["cell"]),
            n=int(data["n"]),
            lost=int(data["lost"]),
            mean=float(data["mean"]),
            low=float(data["low"]),
            high=float(data["high"]),
            p_vs_best=None if p is None else float(p),
            worse=bool(data["worse"]),
        )


@dataclasses.dataclass(frozen=True)
class AblationTable:
    """An ablation's result: its factors and one row per cell, best first."""

    factors: tuple[str, ...]
    rows: tuple[CellRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"factors": list(self.factors), "rows": [row.to_dict() for row in self.rows]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AblationTable:
        return cls(
            tuple(str(f) for f in data["factors"]),
            tuple(CellRow.from_dict(row) for row in data["rows"]),
        )


@dataclasses.dataclass(frozen=True)
class SizePoint:
    """The runs at one training-set size."""

    fraction: float
    examples: int
    train: tuple[float, ...]  # train error of each repeat (on the examples it trained on)
    dev: tuple[float, ...]  # dev error of each repeat

    @property
    def train_mean(self) -> float:
        return statistics.fmean(self.train)

    @property
    def dev_mean(self) -> float:
        return statistics.fmean(self.dev)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "train": list(self.train), "dev": list(self.dev)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SizePoint:
        return cls(
            float(values["fraction"]),
            int(values["examples"]),
            tuple(float(v) for v in values["train"]),
            tuple(float(v) for v in values["dev"]),
        )


@dataclasses.dataclass(frozen=True)
class LearningCurve:
    """A trial's learning curve over the training-set size, and what it says."""

    trial: int  # the trial whose config trained on growing shares
    points: tuple[SizePoint, ...]  # by growing size
    label: str  # underfitting, overfitting or good_fit
    numbers: dict[str, float]  # the figures behind the label (finite ones only)
    sentence: str  # the label in words, with its advice

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "points": [p.to_dict() for p in self.points],
            "label": self.label,
            "numbers": {k: v for k, v in self.numbers.items() if math.isfinite(v)},
            "sentence": self.sentence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LearningCurve:
        return cls(
            int(data["trial"]),
            tuple(SizePoint.from_dict(p) for p in data["points"]),
            str(data["label"]),
            {str(k): float(v) for k, v in data["numbers"].items()},
            str(data["sentence"]),
        )
