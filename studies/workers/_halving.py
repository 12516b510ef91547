"""Pruning where Optuna cannot: successive halving over the project's epoch table.

Optuna refuses `trial.report` in a study of several objectives, so none of its pruners can
judge such a trial. hpstudy prunes it itself, by the rule of Optuna's asynchronous successive
halving (`optuna.pruners.SuccessiveHalvingPruner`), applied to the study's learning metric
(the first learning objective, else dev_loss):

- the rungs are the epochs `min_resource * reduction_factor ** (min_early_stopping_rate + k)`
  (epochs count from 0, as the steps a single-objective trial reports);
- at a rung, the trial competes with every trial of the study whose epoch table holds that
  epoch (finished, pruned there, or still running): it goes on when its metric at the rung is
  among the best `1 / reduction_factor` of them, and while fewer than `reduction_factor`
  trials reached the rung, only when it is the best of them;
- a metric that is not finite at a rung prunes the trial.

The other trials' epochs are read from the database, so workers on other machines count as
soon as their epochs are written (at most a flush interval late).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from studies.storage import EpochStore


class EpochHalving:
    """Decides, after an epoch, whether a trial of a multi-objective study stops."""

    def __init__(
        self,
        store: EpochStore,
        study_id: int,
        metric: str,
        *,
        maximize: bool,
        min_resource: int = 1,
        reduction_factor: int = 4,
        min_early_stopping_rate: int = 0,
        bootstrap_count: int = 0,
    ) -> None:
        self.store, self.study_id, self.metric, self.maximize = store, study_id, metric, maximize
        self.min_resource = min_resource
        self.reduction_factor = reduction_factor
        self.min_early_stopping_rate = min_early_stopping_rate
        self.bootstrap_count = bootstrap_count

    @classmethod
    def from_spec(
        cls,
        store: EpochStore,
        study_id: int,
        metric: str,
        *,
        maximize: bool,
        pruner: Mapping[str, Any],
    ) -> EpochHalving | None:
        """The halving of a spec's `successive_halving` pruner entry; None for "none"."""
        if pruner.get("name") != "successive_halving":
            return None
        min_resource = pruner.get("min_resource", "auto")
        return cls(
            store,
            study_id,
            metric,
            maximize=maximize,
            # Optuna's "auto" waits for a finished trial to guess; one epoch is its floor.
            min_resource=1 if min_resource == "auto" else int(min_resource),
            reduction_factor=int(pruner.get("reduction_factor", 4)),
            min_early_stopping_rate=int(pruner.get("min_early_stopping_rate", 0)),
            bootstrap_count=int(pruner.get("bootstrap_count", 0)),
        )

    def is_rung(self, epoch: int) -> bool:
        """Whether `epoch` (from 0) is one at which trials are compared."""
        step = self.min_resource * self.reduction_factor**self.min_early_stopping_rate
        while step < epoch:
            step *= self.reduction_factor
        return step == epoch

    def should_prune(self, trial_id: int, epoch: int, value: float) -> bool:
        """Whether the trial, with `value` of the metric at `epoch`, stops here."""
        if not self.is_rung(epoch):
            return False
        if not math.isfinite(value):
            return True
        others = self.store.values_at(self.study_id, epoch, self.metric)
        others.pop(trial_id, None)  # its own row may or may not be written yet
        competing = sorted([v for v in others.values() if math.isfinite(v)] + [value])
        if len(competing) <= self.bootstrap_count:
            return True
        return not promotable(value, competing, self.reduction_factor, maximize=self.maximize)


def promotable(
    value: float, competing: list[float], reduction_factor: int, *, maximize: bool
) -> bool:
    """Optuna's rule: among the best `len // reduction_factor` of the sorted `competing`
    (which holds `value`), or the best of them while there are fewer than that."""
    keep = max(1, len(competing) // reduction_factor)
    threshold = competing[-keep] if maximize else competing[keep - 1]
    return value >= threshold if maximize else value <= threshold
