"""Two `[study]` values as small typed objects: the target that ends a study, and an ablation.

Each is kept in the spec stored with the study in the TOML form `to_dict` writes and
`from_dict` reads (checked first by the spec, which names the key and the fix).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from trainer import metric_direction


@dataclasses.dataclass(frozen=True)
class Target:
    """`target = { dev_accuracy = 0.98 }`: no new trial starts once an epoch reaches it."""

    metric: str  # one of the metrics a study records (`studies.spec.METRICS`)
    value: float

    @property
    def maximize(self) -> bool:
        """Whether a higher value is better (accuracy, R²)."""
        return metric_direction(self.metric) == "maximize"

    def met_by(self, value: float) -> bool:
        """Whether an epoch's `value` of the metric reaches the target."""
        return value >= self.value if self.maximize else value <= self.value

    def to_dict(self) -> dict[str, float]:
        return {self.metric: self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        """The TOML form: one metric and its value."""
        [(metric, value)] = data.items()
        return cls(str(metric), float(value))


@dataclasses.dataclass(frozen=True)
class Ablation:
    """`ablation = { factors = [...], repeats = R }`: every cell of the factors' values, with
    the same R seeds in each (`hpstudy ablate` writes it; the space's `repeat` picks a seed)."""

    factors: tuple[str, ...]  # categorical parameters of the space
    repeats: int  # seeds per cell, at least 2

    def to_dict(self) -> dict[str, Any]:
        return {"factors": list(self.factors), "repeats": self.repeats}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ablation:
        return cls(tuple(str(f) for f in data["factors"]), int(data["repeats"]))
