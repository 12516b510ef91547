"""The search simulation: epoch accounting, early stopping, pruning, the anytime curve, resume."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from benchmarks.hpobench.simulate import (
    SIDES,
    OptunaPolicy,
    Outcome,
    Policy,
    Results,
    Task,
    bootstrap_median,
    run_all,
    simulate,
    summary,
)
from search_space import SearchSpace, suggest
from studies import StudySpec, load_spec

EPOCHS = 6
SPEC = load_spec("digits-mlp")  # hpstudy's sampler and pruner settings; patience 0
SPACE = SearchSpace.from_dict(
    {
        "lr": {"low": 1e-3, "high": 1.0, "log": True},
        "optimizer": {"choices": ["sgd", "adam"]},
    }
)


class FakeTask:
    """Known curves: `shape(params)` per epoch, times a little noise when `noise`."""

    def __init__(
        self,
        shape: Callable[[Mapping[str, Any]], list[float]] | None = None,
        *,
        noise: float = 0.05,
    ) -> None:
        self.space, self.epochs, self.noise = SPACE, EPOCHS, noise
        self.shape = shape or _converging

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        return suggest(trial, self.space)

    def curve(
        self, params: Mapping[str, Any], *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        curve = np.array(self.shape(params))
        if rng is not None and self.noise:
            curve *= np.exp(rng.normal(0.0, self.noise, size=len(curve)))
        return curve


def _converging(params: Mapping[str, Any]) -> list[float]:
    """Best near lr 0.03 with adam, falling with the epochs."""
    final = 0.05 + 0.3 * abs(math.log10(params["lr"]) + 1.5) + 0.1 * (params["optimizer"] == "sgd")
    return [final * (1 + 2 * math.exp(-e)) for e in range(EPOCHS)]


def _run(
    task: Task,
    side: str,
    *,
    budget: int,
    workers: int = 1,
    patience: int = 0,
    sides: Mapping[str, Any] = SIDES,
) -> Outcome:
    return simulate(
        task,
        side,
        seed=3,
        budget_epochs=budget,
        target=0.1,
        spec=SPEC,
        workers=workers,
        patience=patience,
        sides=sides,
    )


def _always_pruned(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    pruner = optuna.pruners.ThresholdPruner(upper=0.0)  # every loss is above 0
    return OptunaPolicy(task, optuna.samplers.RandomSampler(seed=seed), pruner, rng=rng)


def test_without_pruning_every_trial_trains_every_epoch() -> None:
    outcome = _run(FakeTask(), "random", budget=5 * EPOCHS)
    assert outcome.trials == 5
    assert outcome.epochs_per_trial == [EPOCHS] * 5
    assert outcome.epochs == outcome.wall == 5 * EPOCHS


def test_two_workers_halve_the_wall_epochs() -> None:
    outcome = _run(FakeTask(), "random", budget=4 * EPOCHS, workers=2)
    assert outcome.epochs_per_trial == [EPOCHS] * 4
    assert (outcome.epochs, outcome.wall) == (4 * EPOCHS, 2 * EPOCHS)


def test_early_stopping_stops_patience_epochs_after_the_best() -> None:
    # best at epoch 2 (1-based); epochs 3, 4 and 5 are no better: stopped after epoch 5
    task = FakeTask(lambda _: [0.5, 0.2, 0.3, 0.2, 0.25, 0.1], noise=0.0)
    outcome = _run(task, "random", budget=3 * 5, patience=3)
    assert outcome.epochs_per_trial == [5, 5, 5]


def test_a_pruner_that_prunes_at_the_first_epoch_costs_one_epoch_per_trial() -> None:
    outcome = _run(FakeTask(), "pruned", budget=12, workers=2, sides={"pruned": _always_pruned})
    assert outcome.epochs_per_trial == [1] * 12
    assert outcome.wall == 6


def test_top_k_continues_the_best_k_of_each_batch_of_n() -> None:
    budget = 20 + 3 * (EPOCHS - 1)
    outcome = _run(FakeTask(), "top-k", budget=budget)
    trained = sorted(outcome.epochs_per_trial)
    assert trained == [1] * 17 + [EPOCHS] * 3


def test_the_anytime_curve_only_improves_and_reports_when_the_target_was_reached() -> None:
    outcome = _run(FakeTask(), "hpstudy", budget=60, workers=2)
    spent = [point[0] for point in outcome.curve]
    bests = [point[2] for point in outcome.curve]
    assert spent == sorted(spent) and bests == sorted(bests, reverse=True)
    assert outcome.best == bests[-1]
    if outcome.epochs_to_target is not None:
        assert outcome.best_at(outcome.epochs_to_target) <= outcome.target
        assert outcome.best_at(outcome.epochs_to_target - 1) > outcome.target


@pytest.mark.parametrize("side", sorted(SIDES))
def test_every_side_spends_the_budget_on_the_fake_task(side: str) -> None:
    outcome = _run(FakeTask(), side, budget=80, workers=2)
    assert outcome.epochs == sum(outcome.epochs_per_trial) == 80
    assert outcome.trials >= 80 // EPOCHS
    assert outcome.wall == 40
    assert math.isfinite(outcome.best)


def test_results_resume_skipping_the_pairs_done(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    meta = {"budget_epochs": 30, "workers": 2, "patience": 0, "target": 0.1}
    done: list[tuple[str, int]] = []

    def remember(outcome: Outcome) -> None:
        done.append((outcome.side, outcome.seed))

    kwargs: dict[str, Any] = {"sides": ["random", "top-k"], "spec": SPEC, "on_done": remember}
    run_all(FakeTask(), Results(path, meta), seeds=[1, 2], **kwargs)
    first = Results(path, meta).outcomes
    run_all(FakeTask(), Results(path, meta), seeds=[1, 2, 3], **kwargs)
    pairs = [(side, seed) for seed in (1, 2, 3) for side in ("random", "top-k")]
    assert done == pairs  # each pair once: the second run only did seed 3
    again = Results(path, meta).outcomes
    assert {key: again[key] for key in first} == first


def test_results_of_another_setting_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    meta = {"budget_epochs": 30, "workers": 2, "patience": 0, "target": 0.1}
    run_all(FakeTask(), Results(path, meta), sides=["random"], seeds=[1], spec=SPEC)
    with pytest.raises(ValueError, match="another setting"):
        Results(path, {**meta, "workers": 4})


def test_bootstrap_median_counts_unreached_seeds_as_infinite() -> None:
    median, low, high = bootstrap_median([10, 20, 30, math.inf, math.inf])
    assert median == 30 and low <= median and math.isinf(high)


def test_summary_has_a_row_per_side(tmp_path: Path) -> None:
    meta = {"budget_epochs": 30, "workers": 2, "patience": 0, "target": 0.1}
    results = Results(tmp_path / "sim.json", meta)
    run_all(FakeTask(), results, sides=["hpstudy", "random"], seeds=[1, 2], spec=SPEC)
    table = summary(results)
    assert "| hpstudy | 2 |" in table and "| random | 2 |" in table


def test_a_seed_repeats_exactly() -> None:
    # Hyperband's brackets follow a hash of the study's name: a random name would not repeat
    first = _run(FakeTask(), "optuna-hyperband", budget=60, workers=2)
    again = _run(FakeTask(), "optuna-hyperband", budget=60, workers=2)
    assert dataclasses.replace(first, seconds=0) == dataclasses.replace(again, seconds=0)


def _add_seeds(path: Path, seeds: list[int]) -> None:
    meta = {"budget_epochs": 12, "workers": 2, "patience": 0, "target": 0.1}
    run_all(FakeTask(), Results(path, meta), sides=["random"], seeds=seeds, spec=SPEC)


def test_processes_adding_to_one_file_keep_each_others_results(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_add_seeds, args=(path, list(range(start, 40, 2))))
        for start in (0, 1)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
    assert [process.exitcode for process in workers] == [0, 0]
    meta = {"budget_epochs": 12, "workers": 2, "patience": 0, "target": 0.1}
    assert sorted(seed for _, seed in Results(path, meta).outcomes) == list(range(40))


def test_summary_compares_sides_on_the_seeds_they_all_have(tmp_path: Path) -> None:
    meta = {"budget_epochs": 30, "workers": 2, "patience": 0, "target": 0.1}
    results = Results(tmp_path / "sim.json", meta)
    run_all(FakeTask(), results, sides=["random"], seeds=[1, 2, 3], spec=SPEC)
    run_all(FakeTask(), results, sides=["top-k"], seeds=[2, 3, 4], spec=SPEC)
    table = summary(results)
    assert "| random | 2 |" in table and "| top-k | 2 |" in table


class InnerTask(FakeTask):
    """A fake task with points inside the first epoch (1/9 and 1/3 of it)."""

    fractions = (1 / 9, 1 / 3)
    eval_cost = 0.05

    def points(
        self, params: Mapping[str, Any], *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        curve = self.curve(params, rng=rng)
        return np.r_[curve[0] * 3, curve[0] * 2, curve]


def _inner(pruner: optuna.pruners.BasePruner) -> Callable[..., Policy]:
    def factory(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
        sampler = optuna.samplers.RandomSampler(seed=seed)
        return OptunaPolicy(task, sampler, pruner, rng=rng, fractions=(1 / 9, 1 / 3))

    return factory


def test_a_trial_pruned_at_the_first_inner_point_costs_its_share_and_one_evaluation() -> None:
    pruned = _inner(optuna.pruners.ThresholdPruner(upper=0.0))
    outcome = _run(InnerTask(), "inner", budget=2, sides={"inner": pruned})
    per_trial = 1 / 9 + InnerTask.eval_cost
    assert outcome.trials == math.ceil(2 / per_trial)
    assert outcome.epochs_per_trial == [round(1 / 9, 9)] * outcome.trials
    assert outcome.epochs == pytest.approx(outcome.trials * per_trial)
    assert outcome.best == math.inf  # no whole epoch was trained: no model to keep


def test_inner_points_are_reported_at_steps_of_their_share_and_whole_epochs_count_alone() -> None:
    task = InnerTask(noise=0.0)
    policies: list[Policy] = []

    def factory(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
        policies.append(_inner(optuna.pruners.NopPruner())(task, spec, seed, rng))
        return policies[-1]

    budget = 2 * (EPOCHS + 2 * InnerTask.eval_cost)
    outcome = _run(task, "inner", budget=math.ceil(budget), sides={"inner": factory})
    first = policies[0].study.trials[0]
    assert sorted(first.intermediate_values) == [1, 3] + [9 * e for e in range(1, EPOCHS + 1)]
    assert outcome.epochs_per_trial[:2] == [EPOCHS, EPOCHS]
    # the best is a whole epoch's loss, never the (here lower) inner points' ×2 and ×3 ones
    trained = [t for t in policies[0].study.trials if t.intermediate_values]
    assert outcome.best == pytest.approx(min(min(task.curve(t.params)) for t in trained))


def test_ray_tunes_own_scheduler_and_searcher_decide_as_our_re_implementation() -> None:
    pytest.importorskip("ray.tune")
    ours = _run(FakeTask(), "tune-asha-like", budget=80, workers=2)
    tune = _run(FakeTask(), "ray-tune-asha", budget=80, workers=2)
    assert tune.epochs_per_trial == ours.epochs_per_trial
    assert tune.curve == ours.curve


def test_a_harder_target_is_read_off_the_anytime_curves(tmp_path: Path) -> None:
    meta = {"target": 0.1, "budget_epochs": 60, "workers": 2, "patience": 0}
    results = Results(tmp_path / "r.json", meta)
    outcome = _run(FakeTask(), "random", budget=60, workers=2)
    results.add(outcome)
    harder = (outcome.curve[0][2] + outcome.best) / 2  # reached after the first improvement

    table = summary(results, reference="random", target=harder)

    expected = next(spent for spent, _, best in outcome.curve if best <= harder)
    assert f"target {harder:.4g}" in table
    assert f"| random | 1 | {expected:.0f} ({expected:.0f}-{expected:.0f}) | 100% |" in table
