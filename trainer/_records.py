"""The trainer's result records, which load without torch.

`EpochResult` (what one epoch did) and `LRRange` (what a range test found) are stored by
`studies` and read back by commands that never train (report, export, status), so they live
apart from the code that needs torch to make them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

METRICS = ("train_loss", "train_accuracy", "dev_loss", "dev_accuracy", "dev_rmse", "dev_r2")


@dataclasses.dataclass(frozen=True, eq=False)
class EpochResult:
    """What one epoch did. Accuracies are fractions in [0, 1]; epochs count from 0.

    Metrics that do not fit the task are NaN: accuracies for regression, RMSE and R² for
    classification (and in records written before regression existed). Two results are equal
    when all fields are, NaN counting as equal to NaN.
    """

    epoch: int
    # mean loss over the epoch's batches (dropout active): cross-entropy, or squared error
    # in the units of the (possibly standardised) targets
    train_loss: float
    train_accuracy: float
    dev_loss: float  # as train_loss, on the dev split in eval mode
    dev_accuracy: float
    lr: float  # the learning rate used during this epoch
    # weight layer (input to output) -> mean L2 norm of its gradient per step, before clipping;
    # frozen layers (`freeze`: no gradient) are left out, so the first entry is the lowest
    # layer that trains
    grad_norm_mean: dict[str, float]
    grad_norm_max: dict[str, float]  # weight layer -> largest such norm in the epoch
    seconds: float  # wall time of the epoch, training and dev evaluation
    finished_at: float = 0.0  # when the epoch ended, in Unix seconds (0 = not recorded)
    dev_rmse: float = math.nan  # regression: dev RMSE in the targets' original units
    dev_r2: float = math.nan  # regression: dev R², averaged over target columns
    # share of the training split this epoch had trained on when it was measured: 1.0 for a
    # whole epoch; less for a point inside the first epoch (`TrainConfig.fractions`), whose
    # train_loss, accuracy and gradient norms cover the batches so far. Records written
    # before partial epochs existed read back as 1.0.
    fraction: float = 1.0

    @property
    def partial(self) -> bool:
        """Whether this is a point inside an epoch (fraction < 1), not a whole epoch."""
        return self.fraction < 1.0

    @property
    def epochs_trained(self) -> float:
        """Epochs of the training split trained so far: epoch + fraction (1 after epoch 0,
        about 0.11 at a first-epoch point with fraction 1/9)."""
        return self.epoch + self.fraction

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochResult:
        return cls(**values)

    def metric(self, name: str) -> float:
        """The value of one of `METRICS`: train_loss, train_accuracy, dev_loss, dev_accuracy,
        dev_rmse or dev_r2.

        Raises:
            KeyError: for another name.
        """
        if name not in METRICS:
            raise KeyError(f"unknown metric '{name}'; choose one of: {', '.join(METRICS)}")
        return float(getattr(self, name))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EpochResult):
            return NotImplemented
        return _same(self.to_dict(), other.to_dict())

    __hash__ = None  # type: ignore[assignment]  # equal by value, and it holds dicts


@dataclasses.dataclass(frozen=True)
class PretrainEpoch:
    """One epoch of unsupervised pre-training of one hidden layer (`TrainConfig.pretrain_epochs`),
    kept apart from the supervised `EpochResult`s: it has no labels, no dev score and no lr
    schedule."""

    layer: str  # the weight of the layer trained, as `weight_layers` names it ("fc1.weight")
    epoch: int  # this layer's pre-training epoch, from 0
    loss: float  # mean squared reconstruction error of the layer's clean inputs, over the epoch
    rows: int  # inputs trained on: the unlabelled rows and the training split's
    seconds: float  # wall time of the epoch
    # the network of a trial of several (`folds`, `repeats`), in `cross_fit`'s member order
    # (repeat by repeat, fold by fold); 0 for a run of one network
    member: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PretrainEpoch:
        return cls(**values)


def training_seconds(results: Sequence[EpochResult]) -> float:
    """The wall time a run's results took: the sum over its whole epochs, or, for a run that
    ended inside its first epoch, the seconds of its last point (a point's seconds count from
    the start of its epoch, and the whole epoch's include its points)."""
    whole = [r.seconds for r in results if not r.partial]
    if whole:
        return sum(whole)
    return max((r.seconds for r in results), default=0.0)


def _same(a: Any, b: Any) -> bool:
    """Equality in which NaN equals NaN (absent metrics are NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@dataclasses.dataclass(frozen=True)
class LRRange:
    """The outcome of `lr_range_test`: the loss curve and the bounds read off it.

    `lrs` and `losses` hold only finite, recorded steps: the step that diverged is not among
    them, its learning rate is `diverged_at`.
    """

    optimizer: str  # the config's optimiser the test ran
    lrs: tuple[float, ...]  # the learning rate of each step, growing exponentially
    losses: tuple[float, ...]  # the smoothed training loss after each step (bias-corrected EMA)
    low: float  # proposed lower bound for a search
    high: float  # proposed upper bound
    steepest: float  # lr where the smoothed loss falls fastest (per unit of log lr)
    minimum: float  # lr at the lowest smoothed loss
    diverged_at: float | None  # lr at which the test stopped on divergence; None: it ran all

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON types (lists for the curves)."""
        values = dataclasses.asdict(self)
        return {**values, "lrs": list(self.lrs), "losses": list(self.losses)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LRRange:
        return cls(**{**values, "lrs": tuple(values["lrs"]), "losses": tuple(values["losses"])})
