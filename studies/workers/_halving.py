"""Pruning where Optuna cannot: successive halving over the project's epoch table.

Optuna refuses `trial.report` in a study of several objectives, so none of its pruners can
judge such a trial. hpstudy prunes it itself, by the rule of Optuna's asynchronous successive
halving (`optuna.pruners.SuccessiveHalvingPruner`) with Pareto ranks in place of values:

- the rungs are the steps `min_resource * reduction_factor ** (min_early_stopping_rate + k)`,
  in the units a single-objective trial reports (`report_step`: the epoch from 0, or with
  `fractions` the epochs trained in units of the smallest fraction); a trial is judged at the
  first step it reports at or past a rung (without fractions, at the rung itself), which is
  the same epoch, or point inside one, for every trial of the study;
- at a rung, a trial is a point: the study's learning metric at that epoch (the first
  learning objective, else dev_loss), plus each objective measured on the network before it
  trains (params, flops, latency_ms, model_bytes); objectives known only at the end
  (train_seconds, a second learning metric) are left out;
- it competes with every trial of the study whose epoch table holds that epoch (finished,
  pruned there, or still running): the points are sorted into Pareto fronts (non-dominated
  sorting), and the trial goes on when its front is among those that hold the best
  `1 / reduction_factor` of the points; while fewer than `reduction_factor` trials reached
  the rung, only when it is on the first front;
- a metric that is not finite at a rung prunes the trial.

With only the learning metric in the point this is Optuna's rule exactly. With a size among
the objectives, a small network is compared with networks of its size, not only with more
accurate large ones: it goes on while nothing reached the rung both smaller and more
accurate. The other trials' epochs and measures are read from the database, so workers on
other machines count as soon as theirs are written (at most a flush interval late).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from studies.spec import MEASURES, pareto_ranks
from studies.storage import EpochStore

# Measured before a trial trains, so known at every rung.
KNOWN_AT_START = tuple(name for name in MEASURES if name != "train_seconds")


class EpochHalving:
    """Decides, after an epoch, whether a trial of a multi-objective study stops."""

    def __init__(
        self,
        store: EpochStore,
        study_id: int,
        metric: str,
        *,
        maximize: bool,
        measured: Mapping[str, str] | None = None,
        min_resource: int = 1,
        reduction_factor: int = 4,
        min_early_stopping_rate: int = 0,
        bootstrap_count: int = 0,
    ) -> None:
        """
        Args:
            metric: the learning metric compared at the rungs.
            measured: objectives measured before training (name -> direction), compared too.
        """
        self.store, self.study_id, self.metric = store, study_id, metric
        # the compared quantities and their directions: the metric first
        self.directions = {metric: "maximize" if maximize else "minimize", **(measured or {})}
        self.min_resource = min_resource
        self.reduction_factor = reduction_factor
        self.min_early_stopping_rate = min_early_stopping_rate
        self.bootstrap_count = bootstrap_count

    @classmethod
    def from_spec(
        cls,
        store: EpochStore,
        study_id: int,
        *,
        metric: str,
        directions: Mapping[str, str],
        pruner: Mapping[str, Any],
    ) -> EpochHalving | None:
        """The halving of a spec's `successive_halving` pruner entry; None for "none".

        Args:
            directions: the study's objectives; those in `KNOWN_AT_START` join the metric.
        """
        if pruner.get("name") != "successive_halving":
            return None
        min_resource = pruner.get("min_resource", "auto")
        return cls(
            store,
            study_id,
            metric,
            maximize=_maximized(metric, directions),
            measured={k: v for k, v in directions.items() if k in KNOWN_AT_START},
            # Optuna's "auto" waits for a finished trial to guess; one epoch is its floor.
            min_resource=1 if min_resource == "auto" else int(min_resource),
            reduction_factor=int(pruner.get("reduction_factor", 4)),
            min_early_stopping_rate=int(pruner.get("min_early_stopping_rate", 0)),
            bootstrap_count=int(pruner.get("bootstrap_count", 0)),
        )

    def is_rung(self, step: int, *, previous: int | None = None) -> bool:
        """Whether trials are compared at `step`: a rung lies after `previous` (the step
        reported before; default `step` - 1) and at or before `step`."""
        after = step - 1 if previous is None else previous
        rung = self.min_resource * self.reduction_factor**self.min_early_stopping_rate
        while rung <= after:
            rung *= self.reduction_factor
        return rung <= step

    def should_prune(
        self,
        trial_id: int,
        epoch: int,
        value: float,
        measured: Mapping[str, float],
        *,
        step: int | None = None,
        previous: int | None = None,
        fraction: float = 1.0,
    ) -> bool:
        """Whether the trial, with `value` of the metric at `epoch` and its network's
        `measured` properties, stops here.

        Args:
            step: the step of this result (`report_step`); default `epoch`.
            previous: the step the trial reported before; default `step` - 1.
            fraction: below 1, the result is a point inside the epoch, compared with the
                other trials' points at that fraction.
        """
        if not self.is_rung(epoch if step is None else step, previous=previous):
            return False
        if not math.isfinite(value):
            return True
        compared = self.directions
        own = _point(value, measured, self.metric, compared)
        if own is None:  # its network was not measured: compare on the metric alone
            compared = {self.metric: compared[self.metric]}
            own = (value,)
        values = self.store.values_at(self.study_id, epoch, self.metric, fraction=fraction)
        values.pop(trial_id, None)  # its own row may or may not be written yet
        others_measured = self.store.measured(self.study_id) if len(compared) > 1 else {}
        points = [
            point
            for other, v in values.items()
            if math.isfinite(v)
            and (point := _point(v, others_measured.get(other, {}), self.metric, compared))
        ]
        if len(points) + 1 <= self.bootstrap_count:
            return True
        ways = list(compared.values())
        return not promotable(own, points, self.reduction_factor, directions=ways)


def _point(
    value: float, measured: Mapping[str, float], metric: str, compared: Mapping[str, str]
) -> tuple[float, ...] | None:
    """The values of the metric and the measured objectives, in `compared`'s order; None
    when a measure is missing or not finite."""
    point = []
    for name in compared:
        found = value if name == metric else measured.get(name)
        if found is None or not math.isfinite(found):
            return None
        point.append(found)
    return tuple(point)


def promotable(
    own: Sequence[float],
    others: Sequence[Sequence[float]],
    reduction_factor: int,
    *,
    directions: Sequence[str] | None = None,
) -> bool:
    """Optuna's successive-halving rule on Pareto fronts: `own` goes on when its front is no
    worse than the front of the `len // reduction_factor`-th best point (of all points with
    `own`), or is the first front while fewer points than that.

    Args:
        directions: each value's "minimize" or "maximize"; None: the points are losses.
    """
    ranks = pareto_ranks([own, *others], directions)
    keep = max(1, len(ranks) // reduction_factor)
    return ranks[0] <= sorted(ranks)[keep - 1]


def _maximized(metric: str, directions: Mapping[str, str]) -> bool:
    from trainer import metric_direction

    return directions.get(metric, metric_direction(metric)) == "maximize"
