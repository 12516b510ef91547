"""A pruner that stops a trial whose forecast final value will almost surely miss the top k."""

from __future__ import annotations

import math

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from studies.spec._extrapolate import MIN_VALUES, forecast


class ExtrapolatingPruner(optuna.pruners.BasePruner):
    """Successive halving's rungs, deciding by each trial's forecast final value.

    At a rung (steps `min_resource * reduction_factor**i`), the trial's partial curve is
    extrapolated to `max_resource` (`forecast`: an ensemble of curve families with noise);
    a rung before its third report keeps every trial (too few points to forecast).
    The trial stops when the probability that its final best beats the k-th best of the
    other trials is below `probability`. The k-th best is taken over every other
    trial, running or pruned ones by their best reported value so far: that value can only
    improve, so the reference is never better than the k-th best final value will be, and the
    rule errs towards keeping a trial. Other trials are read from the study, so the pruner
    works across parallel workers as Optuna's do; a maximised metric is handled by the
    study's direction.

    Args:
        min_resource: the first rung's step.
        reduction_factor: the next rung is this many times further.
        k: the rank a trial must be able to reach to go on (3: the top three).
        probability: stop below this chance of beating the k-th best.
        max_resource: how many reports a whole trial makes (its epochs), the last of which
            is forecast, or "auto": the most a completed trial made (nothing stops before
            one completes).
        halving: also require successive halving's rule (worse than the best
            1/`reduction_factor` at the rung): stop only a trial that both rules stop.
        bound: the best value the metric can reach (0 for a loss, 1 for accuracy), or None:
            a forecast never goes past it.

    Raises:
        ValueError: an argument out of its range, naming it.
    """

    def __init__(
        self,
        *,
        min_resource: int = 1,
        reduction_factor: int = 3,
        k: int = 3,
        probability: float = 0.05,
        max_resource: int | str = "auto",
        halving: bool = True,
        bound: float | None = None,
    ) -> None:
        _check_int("min_resource", min_resource, 1)
        _check_int("reduction_factor", reduction_factor, 2)
        _check_int("k", k, 1)
        if isinstance(probability, bool) or not isinstance(probability, (int, float)):
            raise ValueError(f"probability must be a number in (0, 1), got {probability!r}")
        if not 0 < probability < 1:
            raise ValueError(f"probability must be in (0, 1), e.g. 0.05; got {probability}")
        if max_resource != "auto":
            _check_int("max_resource", max_resource, 2, hint='or "auto"')
        if not isinstance(halving, bool):
            raise ValueError(f"halving must be true or false, got {halving!r}")
        if bound is not None and (
            isinstance(bound, bool)
            or not isinstance(bound, (int, float))
            or not math.isfinite(bound)
        ):
            raise ValueError(f"bound must be a finite number (0 for a loss), got {bound!r}")
        self.min_resource, self.reduction_factor = min_resource, reduction_factor
        self.k, self.probability = k, float(probability)
        self.max_resource, self.bound = max_resource, bound
        self._halving = (
            optuna.pruners.SuccessiveHalvingPruner(
                min_resource=min_resource, reduction_factor=reduction_factor
            )
            if halving
            else None
        )

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        if self._halving is not None:
            if not self._halving.prune(study, trial):
                return False  # halving keeps it (and it decides only at its rungs)
        elif not self._is_rung(step):
            return False
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        steps = sorted(trial.intermediate_values)
        values = [sign * trial.intermediate_values[s] for s in steps]
        if not all(math.isfinite(v) for v in values):
            return True  # diverged, as successive halving decides
        others = study.get_trials(deepcopy=False)
        horizon = self._horizon(others)
        bests = sorted(
            best
            for other in others
            if other.number != trial.number
            for best in [_best(other, sign)]
            if best is not None
        )
        if horizon is None or len(bests) < self.k or len(values) < MIN_VALUES:
            return False
        # Reports are counted from 1 whatever the first step (hpstudy's is 1, the epochs
        # trained; a loop of Optuna's examples reports from 0): the forecast runs to the
        # `horizon`-th report.
        counted = [step - steps[0] + 1 for step in steps]
        predicted = forecast(values, horizon=horizon, steps=counted)
        if self.bound is not None:
            predicted = predicted.clipped(sign * self.bound)
        return predicted.probability_below(bests[self.k - 1]) < self.probability

    def _is_rung(self, step: int) -> bool:
        rung = self.min_resource
        while rung < step:
            rung *= self.reduction_factor
        return rung == step

    def _horizon(self, trials: list[FrozenTrial]) -> int | None:
        if self.max_resource != "auto":
            return int(self.max_resource)
        done = [
            t.last_step - min(t.intermediate_values) + 1
            for t in trials
            if t.state == TrialState.COMPLETE and t.last_step is not None
        ]
        return max(done) if done else None


def _best(trial: FrozenTrial, sign: float) -> float | None:
    """A trial's best value so far, as a loss (`sign` -1 turns a maximised metric into one)."""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        return sign * trial.value
    reported = [sign * v for v in trial.intermediate_values.values() if math.isfinite(v)]
    return min(reported) if reported else None


def _check_int(name: str, value: object, low: int, *, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = f" {hint}" if hint else ""
        raise ValueError(f"{name} must be an integer >= {low}{extra}, got {value!r}")
