"""The simulated priors: the earlier study's best configurations, distinct, run first."""

from __future__ import annotations

import numpy as np

from benchmarks.hpobench.priors import distinct, earlier_best, priors_side
from tests.benchmarks_tests.hpobench_tests.test_simulate import SPEC, FakeTask


def test_the_earlier_study_gives_its_complete_trials_best_first() -> None:
    ranked = earlier_best(FakeTask(), SPEC, seed=0, budget_epochs=150, target=0.1, workers=1)
    values = [value for _, value in ranked]
    assert len(ranked) >= 2
    assert values == sorted(values)


def test_distinct_keeps_the_first_of_equal_configurations() -> None:
    a, b = {"lr": 0.01, "optimizer": "adam"}, {"lr": 0.1, "optimizer": "sgd"}
    assert distinct([(a, 0.1), (a, 0.2), (b, 0.3)], 2) == [a, b]


def test_the_priors_are_the_first_trials_of_the_new_study() -> None:
    configs = [{"lr": 0.03, "optimizer": "adam"}, {"lr": 0.5, "optimizer": "sgd"}]
    task = FakeTask()
    policy = priors_side(configs)(task, SPEC, 1, np.random.default_rng(1))
    first = [policy.new_run().params for _ in range(3)]
    assert first[:2] == configs
