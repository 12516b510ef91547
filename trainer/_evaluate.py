"""Losses and scores per task: cross-entropy and accuracy, or squared error, RMSE and R².

Regression scores, over a split of N examples and k target columns:

- loss: the mean squared error over all N * k values, in the units the model is trained in
  (standardised target units when `standardize` is on, the targets' own units otherwise);
- rmse: the root of that mean, in the targets' original units (each column's error multiplied
  back by its deviation before squaring);
- r2: 1 - SSE_j / SST_j per column j, with SST_j taken around the split's own mean of column j,
  averaged over the k columns with equal weights (scikit-learn's "uniform_average"); it is NaN
  for a column that is constant in the split. R² does not depend on standardisation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 2048  # examples per forward pass when evaluating; memory only, not results


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Scores of a model on one split; the metrics that do not fit the task are NaN."""

    loss: float  # mean cross-entropy, or mean squared error (see the module's docstring)
    accuracy: float = math.nan  # classification: share of correct argmax predictions
    rmse: float = math.nan  # regression: root mean squared error in the targets' units
    r2: float = math.nan  # regression: coefficient of determination, averaged over columns

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def task_loss(output: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """The mean training loss of a batch: cross-entropy, or squared error for regression."""
    if task == "regression":
        return F.mse_loss(output.reshape(y.shape), y)
    return F.cross_entropy(output, y)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    task: str = "classification",
    target_std: Sequence[float] | None = None,
) -> Evaluation:
    """Scores `model` on (x, y) in eval mode.

    Args:
        model: the network.
        x: inputs.
        y: class numbers (N,), or regression targets (N, k) as the model is trained on them.
        task: "classification" or "regression".
        target_std: regression: the deviation each target column was divided by
            (`Data.target_std`), so that RMSE comes out in the original units.
    """
    model.eval()
    if task == "regression":
        return _regression(model, x, y, target_std)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for begin in range(0, len(y), EVAL_BATCH):
        xb, yb = x[begin : begin + EVAL_BATCH], y[begin : begin + EVAL_BATCH]
        logits = model(layout(xb, model))
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(dim=1) == yb).sum()
    return Evaluation(loss=loss_sum.item() / len(y), accuracy=correct.item() / len(y))


def _regression(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, target_std: Sequence[float] | None
) -> Evaluation:
    sse = torch.zeros(y.shape[1], device=x.device, dtype=torch.float64)  # per target column
    for begin in range(0, len(y), EVAL_BATCH):
        xb, yb = x[begin : begin + EVAL_BATCH], y[begin : begin + EVAL_BATCH]
        error = model(layout(xb, model)).reshape(yb.shape) - yb
        sse += error.double().pow(2).sum(dim=0)
    values = y.numel()
    truth = y.double()
    sst = (truth - truth.mean(dim=0)).pow(2).sum(dim=0)
    r2 = torch.where(sst > 0, 1.0 - sse / sst, torch.full_like(sst, math.nan)).mean()
    std = torch.ones_like(sse) if target_std is None else torch.tensor(target_std).to(sse)
    return Evaluation(
        loss=sse.sum().item() / values,
        rmse=math.sqrt((sse * std.pow(2)).sum().item() / values),
        r2=r2.item(),
    )


def layout(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """Image batches in the channels-last layout that `fit` gives convolutional models."""
    if x.dim() == 4 and isinstance(
        model[0] if isinstance(model, nn.Sequential) else None, nn.Conv2d
    ):
        return x.contiguous(memory_format=torch.channels_last)
    return x
