"""The replay of recorded curves through a pruner."""

from __future__ import annotations

import numpy as np
import optuna

from benchmarks.hpobench.extrapolate import RULES, replay, score


def curves(configs: int = 30, epochs: int = 10) -> np.ndarray:
    """Falling curves, each to its own floor; configuration i ends i-th best."""
    t = np.arange(1.0, epochs + 1)
    return np.array([0.05 * (i + 1) + 1.0 / t for i in range(configs)])


def test_without_a_pruner_every_configuration_trains_to_its_end() -> None:
    result = replay(curves(), list(range(30)), optuna.pruners.NopPruner())
    assert result.trained.tolist() == [10] * 30
    assert not result.stopped.any()


def test_halving_stops_the_worse_configurations_of_an_order() -> None:
    order = list(reversed(range(30)))  # worst first: each next one is better, none stopped
    assert not replay(curves(), order, RULES["halving min 1"](10)).stopped.any()
    order = list(range(30))  # best first: the later, worse ones stop
    result = replay(curves(), order, RULES["halving min 1"](10))
    assert result.stopped[10:].all() and not result.stopped[0]
    assert (result.trained[result.stopped] < 10).all()


def test_a_score_counts_the_top_three_over_every_order() -> None:
    scored = score(curves(), "halving min 1", range(4))
    assert scored.top_runs == 12 and 0 <= scored.top_stopped <= 12
    assert 0 < scored.saved < 1
