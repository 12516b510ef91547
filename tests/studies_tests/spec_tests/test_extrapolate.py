"""The learning-curve forecast and the extrapolating pruner built on it."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import optuna
import pytest

from studies.spec import ExtrapolatingPruner, check_pruner, forecast, make_pruner


@pytest.fixture(autouse=True)
def quiet_optuna() -> Iterator[None]:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


@pytest.mark.parametrize(
    "curve",
    [
        lambda t: 0.1 + 2.0 * t**-0.7,  # a power law, its exponent off the grid
        lambda t: 0.2 + 1.0 * np.exp(-0.3 * t),  # an exponential, its rate off the grid
    ],
)
def test_the_fit_recovers_a_known_curve_far_beyond_its_last_epoch(curve) -> None:
    t = np.arange(1.0, 9.0)
    predicted = forecast(curve(t), horizon=40)
    assert predicted.mean == pytest.approx(float(curve(np.array(40.0))), rel=0.05)


def test_a_curve_that_turns_up_keeps_its_best_so_far_as_likely() -> None:
    overfitting = [1.0, 0.5, 0.3, 0.25, 0.27, 0.3, 0.34, 0.4]
    predicted = forecast(overfitting, horizon=20)
    assert predicted.best == 0.25
    assert predicted.probability_below(0.2501) == 1.0  # it has been there already
    assert predicted.probability_below(0.1) < 0.5


def test_noise_makes_a_lower_final_best_more_likely() -> None:
    t = np.arange(1.0, 11.0)
    smooth = 0.1 + t**-1.0
    noisy = smooth + 0.03 * np.random.default_rng(0).standard_normal(len(t))
    threshold = float(min(smooth.min(), noisy.min())) - 0.02
    assert forecast(noisy, horizon=20).probability_below(threshold) > forecast(
        smooth, horizon=20
    ).probability_below(threshold)


def test_a_forecast_needs_three_finite_values() -> None:
    with pytest.raises(ValueError, match="3 or more"):
        forecast([1.0, 0.5], horizon=10)
    with pytest.raises(ValueError, match="finite"):
        forecast([1.0, math.nan, 0.5], horizon=10)


def test_a_forecast_takes_a_few_milliseconds_at_most() -> None:
    import time

    curve = 0.1 + np.arange(1.0, 19.0) ** -0.5
    tic = time.perf_counter()
    for _ in range(100):
        forecast(curve, horizon=20)
    assert (time.perf_counter() - tic) / 100 < 0.01


STEPS = 20


def learning(final: float) -> list[float]:
    """A dev loss that falls from about 1 towards `final`."""
    return [final + 0.9 / (step + 1) for step in range(STEPS)]


def run(
    study: optuna.Study, values: list[float], *, sign: float = 1.0, first: int = 1
) -> int | None:
    """Reports `values` (times `sign`) at steps `first`, `first` + 1, ...; the step it is
    stopped at."""
    trial = study.ask()
    for epoch, value in enumerate(values, start=first):
        trial.report(sign * value, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return epoch
    best = min(values) if sign > 0 else max(sign * v for v in values)
    study.tell(trial, best)
    return None


@pytest.mark.parametrize("first", [0, 1])  # hpstudy reports epoch e at step e - 1
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
@pytest.mark.parametrize("halving", [True, False])
def test_the_pruner_stops_a_hopeless_trial_and_keeps_a_good_one(
    direction: str, halving: bool, first: int
) -> None:
    sign = 1.0 if direction == "minimize" else -1.0
    pruner = make_pruner({"name": "extrapolate", "halving": halving, "max_resource": STEPS})
    study = optuna.create_study(direction=direction, pruner=pruner)
    for final in (0.30, 0.32, 0.34, 0.36, 0.38):
        run(study, learning(final), sign=sign, first=first)
    stopped = run(study, [2.0 - 0.001 * step for step in range(STEPS)], sign=sign, first=first)
    assert stopped is not None and stopped < 10
    # It starts behind the others but falls fast towards 0.1: it goes on.
    late = [0.1 + 3.0 * math.exp(-0.4 * step) for step in range(STEPS)]
    assert run(study, late, sign=sign, first=first) is None


def test_the_pruner_waits_for_k_other_trials_and_a_completed_one() -> None:
    study = optuna.create_study(pruner=ExtrapolatingPruner(k=3, halving=False))
    run(study, learning(0.3))
    run(study, learning(0.3))
    assert run(study, [5.0] * STEPS) is None  # two others: fewer than k
    fresh = optuna.create_study(pruner=ExtrapolatingPruner(k=1, halving=False))
    trial = fresh.ask()  # running, never completed: "auto" has no horizon
    for epoch, value in enumerate(learning(0.3)[:5], start=1):
        trial.report(value, epoch)
    assert run(fresh, [5.0] * 9) is None


def test_the_pruner_reads_trials_of_other_workers_from_the_storage(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'lc.db'}"
    spec = {"name": "extrapolate", "max_resource": STEPS}
    first = optuna.create_study(study_name="lc", storage=storage, pruner=make_pruner(spec))
    for final in (0.30, 0.32, 0.34, 0.36):
        run(first, learning(final))
    other = optuna.load_study(study_name="lc", storage=storage, pruner=make_pruner(spec))
    assert run(other, [2.0] * STEPS) is not None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"probability": 1.5}, "probability must be in (0, 1)"),
        ({"k": 0}, "k must be an integer >= 1"),
        ({"max_resource": "all"}, 'max_resource must be an integer >= 2 or "auto"'),
        ({"halving": "yes"}, "halving must be true or false"),
        ({"bound": "zero"}, "bound must be a finite number"),
        ({"reduction_factor": 1}, "reduction_factor must be an integer >= 2"),
        ({"patience": 3}, "study.pruner.patience: not an argument of the extrapolate pruner"),
    ],
)
def test_spec_validation_refuses_a_bad_argument_with_its_name(
    entry: dict[str, object], problem: str
) -> None:
    problems = check_pruner({"name": "extrapolate", **entry})
    assert len(problems) == 1 and problem in problems[0], problems


def test_spec_validation_accepts_the_documented_arguments() -> None:
    entry = {
        "name": "extrapolate",
        "min_resource": 1,
        "reduction_factor": 3,
        "k": 3,
        "probability": 0.2,
        "max_resource": 20,
        "halving": True,
        "bound": 0.0,
    }
    assert check_pruner(entry) == []
    assert check_pruner({"name": "extrapolate"}) == []
