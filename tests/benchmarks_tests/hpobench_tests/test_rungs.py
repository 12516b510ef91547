"""Rungs inside the first epoch replayed on recorded curves: costs and stops."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.hpobench.rungs import Rule, score
from benchmarks.hpobench.surrogate import Partials

EPOCHS, CONFIGS = 9, 30


def _data(seed: int = 0) -> tuple[np.ndarray, Partials]:
    """Curves whose order never changes: configuration i ends at 0.1 + i / 100."""
    rng = np.random.default_rng(seed)
    finals = 0.1 + np.arange(CONFIGS) / 100
    curves = np.array([f * (1 + 2 * np.exp(-np.arange(EPOCHS))) for f in finals])
    inner = np.c_[curves[:, 0] * 3, curves[:, 0] * 2]
    partials = Partials(
        params=[{"i": int(i)} for i in rng.permutation(CONFIGS)],
        fractions=np.array([1 / 9, 1 / 3]),
        dev_loss=inner,
        eval_cost=0.05,
    )
    return curves, partials


def test_without_pruning_nothing_is_saved_and_inner_points_cost_their_share() -> None:
    curves, partials = _data()
    never = Rule((1 / 9, 1 / 3), 10**6)  # a first rung past the end: never prunes

    whole = score(curves, partials, Rule((), 10**6), "whole", [0])
    inner = score(curves, partials, never, "inner", [0])

    assert whole.saved == pytest.approx(0.0) and whole.top_stopped == 0
    # each configuration pays two more dev evaluations and nothing else
    assert inner.saved == pytest.approx(-2 * 0.05 / EPOCHS)


def test_rungs_inside_the_first_epoch_save_compute_when_the_order_never_changes() -> None:
    curves, partials = _data()
    seeds = range(5)

    epochs = score(curves, partials, Rule((), 1), "epochs", seeds)
    inner = score(curves, partials, Rule((1 / 9, 1 / 3), 1), "inner", seeds)

    assert inner.saved > epochs.saved > 0.3
    assert inner.best_kept == epochs.best_kept == 1.0  # the best is best at every point
