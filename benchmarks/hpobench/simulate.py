"""Search simulations on a surrogate: which sampler + pruner finds a top configuration soonest.

A *side* is a search: a sampler and a rule that stops trials (an Optuna pruner, or a scheduler
of its own). `simulate` runs one side against a task (a `SurrogateTask`, or anything with its
`space`, `epochs`, `suggest` and `curve`) for one seed, with `workers` parallel workers, as
hpstudy's live benchmark runs 2 worker processes:

- Asynchronous and event-driven in epoch time: every epoch costs 1 on its worker's clock (a
  side with points inside the first epoch, `Policy.fractions`: each point costs its share of
  the epoch plus one dev evaluation, the task's measured `eval_cost`); the next event is the
  earliest end (ties: the lower worker). Each worker trains its trial
  epoch by epoch; a trial that ends (completed, stopped early, pruned) frees its worker, which
  at once asks the side for the next (Optuna ask/tell on one in-memory study, so the trials in
  flight are visible to constant liar; one sampler serves every worker).
- A trial's "run" is one noisy draw, `task.curve(params, rng=...)`, fixed when it starts.
- After each epoch, as hpstudy's trainer and reporter do (`trainer/_fit.py`,
  `studies/workers/_objective.py`): the run records the epoch (the best so far is the lowest
  dev loss, strictly lower replaces it; early stopping when `epoch - best_epoch >= patience`,
  patience from the spec's [train], 0 = off: `digits-mlp` has none, `mnist-mlp` 3); then the
  epoch's own dev loss is reported to the pruner at step `epoch` (1-based: the epochs trained,
  as hpstudy's `report_step` counts since issue 28; with fractions, in units of the smallest,
  the points inside the first epoch too), which may prune the trial even at an epoch where it
  completes or stops early. Points inside an epoch are not epochs: they neither count for
  early stopping nor hold a model to keep, so the anytime best is over whole epochs. A
  completed trial is told its best dev loss (model selection); a pruned one is told PRUNED
  (Optuna keeps its reports).
- Cost: `epochs`, the epochs trained summed over trials; `wall`, the latest worker clock
  (epochs of wall time with `workers` in parallel). The search stops when `budget_epochs`
  have been trained; runs in flight are dropped.
- The anytime curve: the lowest dev loss of any epoch trained so far (of any trial, pruned ones
  included: hpstudy stores every epoch) against epochs spent, a point at each improvement; and
  the epochs (and wall epochs) spent until it first reaches `target`: by default
  `task.target(0.95)`, the surrogate's top-5% target for *noisy* runs (its `noisy=True`:
  the best dev loss that 5% of 4000 uniform noisy draws reach; 0.0650 on `digits-mlp`).

Sides (`SIDES`; each a factory of a fresh `Policy` per seed):

- `hpstudy`: the spec's own sampler, pruner and `[train] fractions` as hpstudy builds them
  (`make_sampler`, `make_pruner`): TPE multivariate + group + constant liar,
  `n_startup_trials` from the spec, and the spec's pruner (since issue 28: successive halving,
  min_resource 1, reduction_factor 3). The spec's `enqueue` is left out.
- `hpstudy-issue12`: the same with issue 12's pruner, min_resource 2 (the default before).
- `hpstudy-lc`: the spec's sampler, as `hpstudy`, with the `extrapolate` pruner (issue 28,
  part 3) as `LC_PRUNER` sets it: halving's rungs from epoch 1 (reduction factor 3), a trial
  stopped where halving would stop it and its forecast final best has under a 5% chance of
  beating the 3rd best so far; `max_resource` the task's epochs, `bound` 0.
- `optuna-hyperband`: plain Optuna 5, TPESampler(multivariate=True, constant_liar=True),
  HyperbandPruner(min_resource=1, max_resource=epochs).
- `optuna-median`: the same TPE, MedianPruner().
- `optuna-wilcoxon`: the same TPE, WilcoxonPruner() (p_threshold 0.1, n_startup_steps 2).
  Optuna documents it for steps that are problem instances (folds, questions), not epochs: it
  tests a trial's reported values against the best trial's at the same steps. On epochs it
  runs as a paired test of the two curves so far (epochs are not independent instances, so
  its p-value means little); the trial is pruned (not, as its docs suggest for instances, told
  the mean of its reports: the mean of a learning curve is no estimate of its best).
- `top-k`: "one epoch, then the top K" (Egele et al. 2023): random configurations trained one
  epoch each; as soon as a batch of `n` has its epoch, its best `k` continue (before any new
  configuration) to the end; repeated until the budget is spent. N = 20, K = 3, as issue 28's
  brief proposed. `top-k-N-K` (`TOP_K_CANDIDATES`) are other settings, tried on the tuning
  seeds 0-19 only: on digits-mlp N = 20, K = 5 was the best to the top 5% (86 epochs, tied
  with 20-3) and better than 20-3 to the top 1% (245 against 305) and in the best at the end,
  so `top-k-20-5` is the tuned top-k reported beside it.
- `random-asha`: RandomSampler, SuccessiveHalvingPruner(min_resource=1, reduction_factor=3).
- `ray-tune-asha`: Ray Tune's own `AsyncHyperBandScheduler` (its defaults) and `OptunaSearch`
  (its default plain TPE) decide, driven by this event loop (`RayTuneAsha`); needs the
  `bench` extra. On every seed tried it decides exactly as `tune-asha-like` (a test checks it).
- `tune-asha-like`: our re-implementation of AsyncHyperBandScheduler's rule (one bracket,
  grace_period 1, reduction_factor 4, rungs at 1, 4, 16 ... below max_t = epochs; at a rung
  a trial stops if its loss is worse than the 1/4 quantile of the losses recorded at that
  rung before it) with a plain TPESampler() searcher, as Ray's OptunaSearch uses by
  default; a trial is told its last reported loss as COMPLETE, as OptunaSearch does.
- `random`: RandomSampler, every trial trained to the end (or stopped early): the floor.

`CANDIDATES` holds settings tried for hpstudy's default (`spec_side`), on the
tuning seeds only.

Seeds: the seed of a simulation seeds its sampler and its noise draws. Reporting seeds are
1000-1099 (`REPORT_SEEDS`); seeds 0-19 (`TUNING_SEEDS`) are for choosing a side's settings
(such as top-k's N and K) and never reported.

From the repository root (results are saved after every (side, seed) pair; the same command
again skips the pairs done):

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.simulate digits-mlp --sides all \\
        --seeds 100 --out benchmarks/hpobench/sim-digits-mlp.json
    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.simulate digits-mlp --summary \\
        --out benchmarks/hpobench/sim-digits-mlp.json

Several processes may fill one file at once, each with its own sides or seeds (`--sides`,
`--first-seed`, `--seeds`): one per core. The budget defaults to 50 full runs' epochs (1000
on `digits-mlp`). Cost of one seed of every side on `digits-mlp`: about 40 s of one core
(TPE with multivariate + group over 100-200 trials is most of it), so 100 seeds take about
70 core-minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import heapq
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import optuna
from optuna.trial import TrialState

from search_space import SearchSpace
from studies import StudySpec, load_spec
from studies.spec import make_pruner, make_sampler

REPORT_SEEDS = range(1000, 1100)
TUNING_SEEDS = range(20)
FRACTIONS = (0.25, 0.5, 1.0)  # of the budget, where the summary reads the anytime curve
FORMAT = 1


class Task(Protocol):
    """What a simulation needs of a task (`SurrogateTask` has it)."""

    space: SearchSpace
    epochs: int

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]: ...

    def curve(
        self, params: Mapping[str, Any], *, rng: np.random.Generator | None = None
    ) -> np.ndarray: ...


@dataclasses.dataclass
class Run:
    """One trial's training: its drawn curve and how far it has gone.

    The curve's points are whole epochs, or (a side with first-epoch points,
    `Policy.fractions`) those inner points of the first epoch and then whole epochs;
    `shares[i]` is the epochs trained at point i (0.111, 0.333, 1, 2, ...) and `costs[i]`
    what reaching it costs, in epochs (an inner point's share of the epoch plus one dev
    evaluation).
    """

    trial: optuna.Trial
    params: dict[str, Any]
    losses: np.ndarray  # the whole drawn run's dev loss at its points
    until: int  # the epoch it trains to unless stopped before (top-k's first round: 1)
    shares: np.ndarray | None = None  # None: every point a whole epoch
    costs: np.ndarray | None = None
    trained: int = 0  # whole epochs
    points: int = 0  # points reached, whole epochs or not
    best: float = math.inf  # over whole epochs (model selection)
    best_epoch: int = 0
    last: float = math.inf  # the last point's dev loss

    @property
    def share(self) -> float:
        """Epochs trained at the point just reached."""
        return float(self.points if self.shares is None else self.shares[self.points - 1])

    def cost(self) -> float:
        """What the next point costs, in epochs."""
        return 1.0 if self.costs is None else float(self.costs[self.points])


def first_epoch_points(
    recorded: Sequence[float], eval_cost: float, wanted: Sequence[float], epochs: int
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Where a run with `[train] fractions = wanted` is scored: the indices of the recorded
    inner points nearest each wanted share, then every point's epochs trained (the inner
    shares, then 1 .. `epochs`) and what reaching it costs (the share trained since the point
    before, plus `eval_cost` for an inner point's extra dev evaluation)."""
    shares_recorded = np.asarray(recorded, dtype=float)
    chosen = [int(np.argmin(np.abs(np.log(shares_recorded / f)))) for f in wanted]
    shares = np.r_[shares_recorded[chosen], np.arange(1, epochs + 1)]
    evaluations = np.r_[np.full(len(chosen), eval_cost), np.zeros(epochs)]
    return chosen, shares, np.diff(np.r_[0.0, shares]) + evaluations


class Policy:
    """A side for one seed: what a free worker trains next, and when a run stops.

    This base trains every trial to its end (or until it stops early); a side changes
    `pruner`, `next_run`, `should_prune` or `finish`.

    Args:
        task: the task the runs are drawn from.
        sampler: the study's sampler.
        rng: draws the runs' noise.
    """

    def __init__(
        self, task: Task, sampler: optuna.samplers.BaseSampler, *, rng: np.random.Generator
    ) -> None:
        self.task, self.rng = task, rng
        # a fixed name: Hyperband assigns brackets by a hash of the study's name
        self.study = optuna.create_study(
            study_name="simulation", sampler=sampler, pruner=self.pruner()
        )

    # The shares of the first epoch where a side's trials score the dev split too, as
    # `[train] fractions` does (each taken at the task's nearest recorded point); a point is
    # reported at step round(epochs trained / fractions[0]), as hpstudy's `report_step`
    # does; () = whole epochs only, reported at the number of epochs trained.
    fractions: tuple[float, ...] = ()

    def pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()

    def new_run(self, *, until: int | None = None) -> Run:
        """A new trial, asked of the study, and its drawn run."""
        trial = self.study.ask()
        params = self.task.suggest(trial)
        until = self.task.epochs if until is None else until
        if not self.fractions:
            losses = np.asarray(self.task.curve(params, rng=self.rng), dtype=float)
            return Run(trial, params, losses, until=until)
        task: Any = self.task
        chosen, shares, costs = first_epoch_points(
            task.fractions, task.eval_cost, self.fractions, self.task.epochs
        )
        drawn = np.asarray(task.points(params, rng=self.rng), dtype=float)
        losses = np.r_[drawn[chosen], drawn[len(task.fractions) :]]
        return Run(trial, params, losses, until=until, shares=shares, costs=costs)

    def step(self, run: Run) -> int:
        """The step a point is reported at (see `fractions`)."""
        return round(run.share / self.fractions[0]) if self.fractions else run.trained

    def next_run(self) -> Run:
        """What a free worker trains next (a new trial, or one to continue)."""
        return self.new_run()

    def should_prune(self, run: Run) -> bool:
        """After each point: reports it, and says whether the run stops here."""
        run.trial.report(run.last, self.step(run))
        return run.trial.should_prune()

    def finish(self, run: Run, state: str) -> None:
        """A run ended: "complete" (its last epoch, or stopped early), "pruned", or "paused"
        (it reached `until` before the last epoch)."""
        if state == "complete":
            self.study.tell(run.trial, run.best)
        else:
            self.study.tell(run.trial, state=TrialState.PRUNED)


class OptunaPolicy(Policy):
    """A sampler and an Optuna pruner, as a user of Optuna runs them; with `fractions`, the
    pruner also sees points inside the first epoch (see `Policy`)."""

    def __init__(
        self,
        task: Task,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        *,
        rng: np.random.Generator,
        fractions: Sequence[float] = (),
    ) -> None:
        self._pruner, self.fractions = pruner, tuple(fractions)
        super().__init__(task, sampler, rng=rng)

    def pruner(self) -> optuna.pruners.BasePruner:
        return self._pruner


class TopK(Policy):
    """One epoch for every configuration, then the best `k` of each batch of `n` to the end."""

    def __init__(
        self,
        task: Task,
        sampler: optuna.samplers.BaseSampler,
        *,
        rng: np.random.Generator,
        n: int = 20,
        k: int = 3,
    ) -> None:
        super().__init__(task, sampler, rng=rng)
        self.n, self.k = n, k
        self.batch: list[Run] = []
        self.ready: list[Run] = []  # chosen to continue, first come first served

    def next_run(self) -> Run:
        if self.ready:
            run = self.ready.pop(0)
            run.until = self.task.epochs
            return run
        return self.new_run(until=1)

    def should_prune(self, run: Run) -> bool:
        return False

    def finish(self, run: Run, state: str) -> None:
        if state != "paused":
            super().finish(run, state)
            return
        self.batch.append(run)
        if len(self.batch) == self.n:
            ranked = sorted(self.batch, key=lambda r: r.best)
            self.ready += ranked[: self.k]
            for dropped in ranked[self.k :]:
                super().finish(dropped, "pruned")
            self.batch = []


class TuneAsha(Policy):
    """Ray Tune's AsyncHyperBandScheduler rule, re-implemented (one bracket; see the module)."""

    def __init__(
        self,
        task: Task,
        sampler: optuna.samplers.BaseSampler,
        *,
        rng: np.random.Generator,
        grace_period: int = 1,
        reduction_factor: float = 4,
    ) -> None:
        super().__init__(task, sampler, rng=rng)
        self.rf = reduction_factor
        rungs = int(math.log(task.epochs / grace_period) / math.log(reduction_factor) + 1)
        self.rungs: list[tuple[float, dict[int, float]]] = [
            (grace_period * reduction_factor**k, {}) for k in reversed(range(rungs))
        ]

    def should_prune(self, run: Run) -> bool:
        # Ray maximises: its reward is -loss, and it stops a trial whose reward is below the
        # (1 - 1/rf) percentile of the rung's recorded rewards, computed before its own.
        number, reward = run.trial.number, -run.last
        for milestone, recorded in self.rungs:
            if run.trained < milestone or number in recorded:
                continue
            stop = bool(recorded) and reward < np.nanpercentile(
                list(recorded.values()), (1 - 1 / self.rf) * 100
            )
            recorded[number] = reward
            return bool(stop)
        return False

    def finish(self, run: Run, state: str) -> None:
        self.study.tell(run.trial, run.last)  # OptunaSearch: the last result, COMPLETE


class RayTuneAsha(Policy):
    """Ray Tune's own code decides: its `AsyncHyperBandScheduler` (defaults: one bracket,
    grace_period 1, reduction_factor 4, max_t = the epochs) stops trials, and its
    `OptunaSearch` (its default sampler, a plain `TPESampler` with the seed) proposes them,
    through Tune's searcher and scheduler calls (`suggest`, `on_trial_result`,
    `on_trial_complete`), as Tune's controller makes them; the simulation's event loop stands
    in for Tune's, so no Ray cluster starts. Needs `pip install 'hpstudy[bench]'`."""

    def __init__(
        self,
        task: Task,
        sampler: optuna.samplers.BaseSampler,
        *,
        rng: np.random.Generator,
    ) -> None:
        from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler
        from ray.tune.search.optuna import OptunaSearch

        super().__init__(task, optuna.samplers.RandomSampler(seed=0), rng=rng)  # unused
        self._stop = TrialScheduler.STOP
        drawn: dict[str, dict[str, Any]] = {}

        def space(trial: Any) -> None:
            drawn["params"] = task.suggest(trial)

        self._drawn = drawn
        self.searcher = OptunaSearch(space=space, metric="loss", mode="min", sampler=sampler)
        self.scheduler = AsyncHyperBandScheduler(
            time_attr="training_iteration", metric="loss", mode="min", max_t=task.epochs
        )
        self._count = 0

    def new_run(self, *, until: int | None = None) -> Run:
        self._count += 1
        handle = _TuneTrial(f"t{self._count:05d}")
        self.searcher.suggest(handle.trial_id)
        params = self._drawn.pop("params")
        self.scheduler.on_trial_add(None, handle)
        losses = np.asarray(self.task.curve(params, rng=self.rng), dtype=float)
        return Run(handle, params, losses, until=self.task.epochs)  # type: ignore[arg-type]

    def _result(self, run: Run) -> dict[str, float]:
        return {"loss": run.last, "training_iteration": run.trained}

    def should_prune(self, run: Run) -> bool:
        result = self._result(run)
        self.searcher.on_trial_result(run.trial.trial_id, result)  # type: ignore[attr-defined]
        return bool(self.scheduler.on_trial_result(None, run.trial, result) == self._stop)

    def finish(self, run: Run, state: str) -> None:
        # a stopped trial completes with its last result, as in Tune
        result = self._result(run)
        trial_id = run.trial.trial_id  # type: ignore[attr-defined]
        if state == "complete":  # Tune tells the scheduler of a trial that ended by itself
            self.scheduler.on_trial_complete(None, run.trial, result)
        else:
            self.scheduler.on_trial_remove(None, run.trial)
        self.searcher.on_trial_complete(trial_id, result)


@dataclasses.dataclass(frozen=True)
class _TuneTrial:
    """What Tune's scheduler reads of a trial: its id."""

    trial_id: str


# --- the sides -----------------------------------------------------------------------------------

SideFactory = Callable[[Task, StudySpec, int, np.random.Generator], Policy]


def _quiet(factory: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return factory()


def _plain_tpe(seed: int) -> optuna.samplers.BaseSampler:
    return _quiet(
        lambda: optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed)
    )


def _hpstudy_lc(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    sampler = make_sampler(spec.sampler, seed=seed, space=spec.space)
    entry = {**LC_PRUNER, "max_resource": task.epochs}
    return OptunaPolicy(task, sampler, make_pruner(entry), rng=rng)


def _optuna_hyperband(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=task.epochs)
    return OptunaPolicy(task, _plain_tpe(seed), pruner, rng=rng)


def _optuna_median(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    return OptunaPolicy(task, _plain_tpe(seed), optuna.pruners.MedianPruner(), rng=rng)


def _optuna_wilcoxon(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    pruner = _quiet(optuna.pruners.WilcoxonPruner)
    return OptunaPolicy(task, _plain_tpe(seed), pruner, rng=rng)


def top_k_side(n: int, k: int) -> SideFactory:
    """The side "one epoch, then the top K": batches of `n`, the best `k` continued."""

    def factory(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
        return TopK(task, optuna.samplers.RandomSampler(seed=seed), rng=rng, n=n, k=k)

    return factory


def _ray_tune_asha(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    sampler = optuna.samplers.TPESampler(seed=seed)  # OptunaSearch's own default, seeded
    return RayTuneAsha(task, sampler, rng=rng)


def _random(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    return OptunaPolicy(task, optuna.samplers.RandomSampler(seed=seed), _nop(), rng=rng)


def _nop() -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def _random_asha(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return OptunaPolicy(task, optuna.samplers.RandomSampler(seed=seed), pruner, rng=rng)


def _tune_asha_like(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
    return TuneAsha(task, optuna.samplers.TPESampler(seed=seed), rng=rng)


def spec_side(
    sampler: Mapping[str, Any] | None = None,
    pruner: Mapping[str, Any] | None = None,
    fractions: Sequence[float] | None = None,
) -> SideFactory:
    """hpstudy's own builders (`make_sampler`, `make_pruner`) with the spec's sampler, pruner
    and `[train] fractions`, or a candidate's in their place, written as a spec would."""

    def factory(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
        sampler_entry = dict(spec.sampler if sampler is None else sampler)
        pruner_entry = dict(spec.pruner if pruner is None else pruner)
        built = make_sampler(sampler_entry, seed=seed, space=spec.space)
        shares = spec.train.fractions if fractions is None else fractions
        return OptunaPolicy(task, built, make_pruner(pruner_entry), rng=rng, fractions=shares)

    return factory


_hpstudy = spec_side()  # the spec as it stands


_SH = "successive_halving"
_SH1 = {"name": _SH, "min_resource": 1, "reduction_factor": 3}
# Candidates for hpstudy's default, compared on the tuning seeds only (`--seeds 20
# --first-seed 0`); the one chosen becomes the specs' default and the `hpstudy` side.
CANDIDATES: dict[str, SideFactory] = {
    "sh-min1-rf3": spec_side(pruner=_SH1),
    "sh-min1-rf4": spec_side(pruner={"name": _SH, "min_resource": 1, "reduction_factor": 4}),
    "sh-min1-rf3-tpe20": spec_side(
        sampler={"name": "tpe", "n_startup_trials": 20},
        pruner=_SH1,
    ),
    "hyperband-min1-rf3": spec_side(
        pruner={"name": "hyperband", "min_resource": 1, "reduction_factor": 3}
    ),
    # the sampler's settings, on mnist-mlp's tuning seeds (issue 28's ablation of the sampler)
    "sh-min1-rf3-tpe5": spec_side(sampler={"name": "tpe", "n_startup_trials": 5}, pruner=_SH1),
    "sh-min1-rf3-univariate": spec_side(
        sampler={"name": "tpe", "n_startup_trials": 10, "multivariate": False, "group": False},
        pruner=_SH1,
    ),
    "sh-min1-rf3-noliar": spec_side(
        sampler={"name": "tpe", "n_startup_trials": 10, "constant_liar": False}, pruner=_SH1
    ),
    "sh-min1-rf4-univariate": spec_side(
        sampler={"name": "tpe", "n_startup_trials": 10, "multivariate": False, "group": False},
        pruner={"name": _SH, "min_resource": 1, "reduction_factor": 4},
    ),
    # rungs at 1/27, 1/9, 1/3, 1, 3, 9 epochs
    "frac27-sh-rf3": spec_side(pruner=_SH1, fractions=(1 / 27, 1 / 9, 1 / 3)),
    # rungs at 1/9, 1/3, 1, 3, 9 epochs
    "frac9-sh-rf3": spec_side(pruner=_SH1, fractions=(1 / 9, 1 / 3)),
    # rungs at 1/3, 1, 3, 9 epochs
    "frac3-sh-rf3": spec_side(pruner=_SH1, fractions=(1 / 3,)),
}

# The extrapolate pruner as chosen on tuning orders (benchmarks/hpobench/extrapolate.py).
LC_PRUNER = {
    "name": "extrapolate",
    "min_resource": 1,
    "reduction_factor": 3,
    "k": 3,
    "probability": 0.05,
    "halving": True,
    "bound": 0.0,
}

SIDES: dict[str, SideFactory] = {
    "hpstudy": _hpstudy,
    # the built-in specs' pruner from issue 12 until issue 28 chose min_resource = 1 (on the
    # tuning seeds, CANDIDATES' "sh-min1-rf3")
    "hpstudy-issue12": spec_side(pruner={"name": _SH, "min_resource": 2, "reduction_factor": 3}),
    "hpstudy-lc": _hpstudy_lc,
    "optuna-hyperband": _optuna_hyperband,
    "optuna-median": _optuna_median,
    "optuna-wilcoxon": _optuna_wilcoxon,
    "top-k": top_k_side(20, 3),
    "random-asha": _random_asha,
    "tune-asha-like": _tune_asha_like,
    "ray-tune-asha": _ray_tune_asha,
    "random": _random,
}
# "One epoch, then the top K" at other N and K, tried on the tuning seeds only (`--first-seed
# 0 --seeds 20`) to give the top-k side its best settings before it is reported.
TOP_K_CANDIDATES: dict[str, SideFactory] = {
    f"top-k-{n}-{k}": top_k_side(n, k) for n in (10, 20, 40) for k in (1, 2, 3, 5) if k < n
}
ALL_SIDES: dict[str, SideFactory] = {**SIDES, **CANDIDATES, **TOP_K_CANDIDATES}


# --- the simulation ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One side's search for one seed."""

    side: str
    seed: int
    trials: int  # trials that trained a point or more
    # epochs are floats where a side trains shares of the first epoch (ints otherwise)
    epochs: float  # epochs trained, summed over trials (= the budget)
    wall: float  # the latest worker clock, in epochs
    best: float  # the lowest dev loss of any epoch trained
    target: float
    epochs_to_target: float | None  # epochs spent when the best first reached the target
    wall_to_target: float | None
    curve: list[tuple[float, float, float]]  # (epochs, wall, best) at each improvement
    epochs_per_trial: list[float]  # in the order the trials started (the last ones cut short)
    seconds: float  # the simulation's own compute time

    def best_at(self, epochs: float) -> float:
        """The best dev loss once `epochs` had been spent (inf before the first epoch)."""
        reached = [best for spent, _, best in self.curve if spent <= epochs]
        return reached[-1] if reached else math.inf

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        fields = dict(data)
        fields["curve"] = [tuple(point) for point in fields["curve"]]
        return cls(**fields)


def simulate(
    task: Task,
    side: str,
    *,
    seed: int,
    budget_epochs: int,
    target: float,
    spec: StudySpec,
    workers: int = 2,
    patience: int | None = None,
    sides: Mapping[str, SideFactory] | None = None,
) -> Outcome:
    """Runs `side` on `task` for one seed (see the module).

    Args:
        task: the task.
        side: a name in `SIDES`.
        seed: seeds the sampler and the runs' noise.
        budget_epochs: epochs to train in all.
        target: the dev loss the search should reach.
        spec: the spec whose sampler and pruner `hpstudy` uses (and its patience).
        workers: parallel workers.
        patience: early stopping's patience; None: the spec's.
        sides: where `side` is looked up.

    Raises:
        ValueError: an unknown side, or fewer than 1 worker or epoch of budget.
    """
    sides = ALL_SIDES if sides is None else sides
    if side not in sides:
        raise ValueError(f"unknown side {side!r}: choose from {sorted(sides)}")
    if workers < 1 or budget_epochs < 1:
        raise ValueError(
            f"workers and budget_epochs must be >= 1, got {workers} and {budget_epochs}"
        )
    patience = spec.train.patience if patience is None else patience
    tic = time.perf_counter()
    policy = sides[side](task, spec, seed, np.random.default_rng(seed))
    runs = [policy.next_run() for _ in range(workers)]
    started = list(runs)
    # (clock when the point in training is reached, worker)
    events = [(runs[worker].cost(), worker) for worker in range(workers)]
    heapq.heapify(events)
    spent, best, curve = 0.0, math.inf, []
    reached: tuple[float, float] | None = None
    clock = 0.0
    while spent < budget_epochs:
        clock, worker = heapq.heappop(events)
        run = runs[worker]
        spent += run.cost()
        run.points += 1
        run.last = float(run.losses[run.points - 1])
        whole = run.shares is None or run.share >= 1
        if whole:
            run.trained += 1
            if run.last < run.best:
                run.best, run.best_epoch = run.last, run.trained
            if run.last < best:  # a model a trial can keep: whole epochs only
                best = run.last
                curve.append((_num(spent), _num(clock), best))
                if reached is None and best <= target:
                    reached = (spent, clock)
        stopped_early = whole and bool(patience) and run.trained - run.best_epoch >= patience
        if policy.should_prune(run):
            policy.finish(run, "pruned")
        elif stopped_early or run.trained >= task.epochs:
            policy.finish(run, "complete")
        elif whole and run.trained >= run.until:
            policy.finish(run, "paused")
        else:
            heapq.heappush(events, (clock + run.cost(), worker))
            continue
        if spent < budget_epochs:
            runs[worker] = policy.next_run()
            if runs[worker].points == 0:
                started.append(runs[worker])
            heapq.heappush(events, (clock + runs[worker].cost(), worker))
    trained = [run.share for run in started if run.points]  # not one asked as time ran out
    return Outcome(
        side=side,
        seed=seed,
        trials=len(trained),
        epochs=_num(spent),
        wall=_num(clock),  # events come in time order: the last one's clock is the latest
        best=best,
        target=target,
        epochs_to_target=None if reached is None else _num(reached[0]),
        wall_to_target=None if reached is None else _num(reached[1]),
        curve=curve,
        epochs_per_trial=[_num(share) for share in trained],
        seconds=time.perf_counter() - tic,
    )


def _num(value: float) -> float:
    """A whole number of epochs as an int (as sides without inner points count), else the
    float rounded to 1e-9 (sums of shares)."""
    rounded = round(float(value), 9)
    return int(rounded) if rounded.is_integer() else rounded


# --- the results file ----------------------------------------------------------------------------


class Results:
    """Outcomes of (side, seed) pairs in a JSON file, rewritten whole after each one.

    The file's `meta` (task, budget, workers, target, patience) must match a run that adds to
    it: results of another setting are never mixed in. Several processes may add to one file
    at once (each its own seeds or sides, e.g. one per core): `add` holds a lock on
    `<file>.lock`, reads what the others saved, and writes the union; a process killed
    mid-write leaves the file it had.

    Raises:
        ValueError: the file holds results of another setting.
    """

    def __init__(self, path: Path, meta: Mapping[str, Any]) -> None:
        self.path, self.meta = path, {"format": FORMAT, **meta}
        self.outcomes: dict[tuple[str, int], Outcome] = {}
        self._read()

    def _read(self) -> None:
        if not self.path.exists():
            return
        data = json.loads(self.path.read_text())
        if data["meta"] != self.meta:
            raise ValueError(
                f"{self.path} holds results of another setting ({data['meta']}, not "
                f"{self.meta}): name another --out, or run with the same settings"
            )
        for item in data["outcomes"]:
            outcome = Outcome.from_dict(item)
            self.outcomes.setdefault((outcome.side, outcome.seed), outcome)

    def __contains__(self, key: tuple[str, int]) -> bool:
        return key in self.outcomes

    def add(self, outcome: Outcome) -> None:
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._read()
            self.outcomes[outcome.side, outcome.seed] = outcome
            ordered = sorted(self.outcomes.values(), key=lambda o: (o.side, o.seed))
            data = {"meta": self.meta, "outcomes": [o.to_dict() for o in ordered]}
            partial = self.path.with_name(f"{self.path.name}.{os.getpid()}.partial")
            partial.write_text(json.dumps(data, separators=(",", ":")) + "\n")
            os.replace(partial, self.path)


def run_all(
    task: Task,
    results: Results,
    *,
    sides: Sequence[str],
    seeds: Sequence[int],
    spec: StudySpec,
    on_done: Callable[[Outcome], None] | None = None,
) -> None:
    """Simulates every (side, seed) pair that `results` lacks, seed by seed, saving each."""
    meta = results.meta
    for seed in seeds:
        for side in sides:
            if (side, seed) in results:
                continue
            outcome = simulate(
                task,
                side,
                seed=seed,
                budget_epochs=int(meta["budget_epochs"]),
                target=float(meta["target"]),
                spec=spec,
                workers=int(meta["workers"]),
                patience=int(meta["patience"]),
            )
            results.add(outcome)
            if on_done is not None:
                on_done(outcome)


# --- the summary ---------------------------------------------------------------------------------


def bootstrap_median(
    values: Sequence[float], *, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """The median and a bootstrap 95% interval (values may be inf: not reached)."""
    array = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(array, size=(draws, len(array))), axis=1)
    low, high = np.quantile(medians, [0.025, 0.975], method="lower")
    return float(np.median(array)), float(low), float(high)


def summary(results: Results, *, reference: str = "hpstudy", target: float | None = None) -> str:
    """A markdown table: per side, epochs to the target (median over seeds, bootstrap 95%
    interval; a seed that did not reach it counts as inf), the share of seeds that reached
    it, the median's ratio to `reference`'s, and the median best dev loss at 25/50/100% of
    the budget. Only the seeds that every side has done count, so that sides are compared on
    the same seeds. `target`: another target than the results' own, read off each outcome's
    anytime curve (e.g. a harder one: the noisy top 1%)."""
    if target is not None:
        results = _retargeted(results, target)
    budget = int(results.meta["budget_epochs"])
    sides = sorted({side for side, _ in results.outcomes}, key=list(ALL_SIDES).index)
    seeds = sorted(
        set.intersection(*({n for s, n in results.outcomes if s == side} for side in sides))
    )
    rows = {side: [results.outcomes[side, seed] for seed in seeds] for side in sides}
    to_target = {
        side: [math.inf if o.epochs_to_target is None else o.epochs_to_target for o in outs]
        for side, outs in rows.items()
    }
    ref = float(np.median(to_target[reference])) if reference in to_target else math.nan
    percents = " | ".join(f"best at {f:.0%}" for f in FRACTIONS)
    lines = [
        f"target {results.meta['target']:.4g}, budget {budget} epochs, "
        f"{results.meta['workers']} workers, patience {results.meta['patience']}; "
        f"{len(seeds)} seeds that every side has done",
        "",
        f"| side | seeds | epochs to target (median, 95% CI) | reached | ratio to {reference} "
        f"| trials | wall epochs to target | {percents} |",
        "| --- " + "| ---: " * (6 + len(FRACTIONS)) + "|",
    ]
    for side, outs in rows.items():
        median, low, high = bootstrap_median(to_target[side])
        walls = [math.inf if o.wall_to_target is None else o.wall_to_target for o in outs]
        reached = sum(o.epochs_to_target is not None for o in outs) / len(outs)
        bests = " | ".join(
            f"{np.median([o.best_at(f * budget) for o in outs]):.4f}" for f in FRACTIONS
        )
        lines.append(
            f"| {side} | {len(outs)} | {_n(median)} ({_n(low)}-{_n(high)}) | {reached:.0%} "
            f"| {_ratio(median, ref)} | {np.median([o.trials for o in outs]):.0f} "
            f"| {_n(float(np.median(walls)))} | {bests} |"
        )
    return "\n".join(lines)


def _retargeted(results: Results, target: float) -> Results:
    """The same outcomes, with epochs (and wall epochs) to `target` read off their curves."""
    copy = Results.__new__(Results)
    copy.path, copy.meta = results.path, {**results.meta, "target": target}
    copy.outcomes = {}
    for key, outcome in results.outcomes.items():
        hit = next((point for point in outcome.curve if point[2] <= target), None)
        copy.outcomes[key] = dataclasses.replace(
            outcome,
            target=target,
            epochs_to_target=None if hit is None else hit[0],
            wall_to_target=None if hit is None else hit[1],
        )
    return copy


def _n(value: float) -> str:
    return ">budget" if math.isinf(value) else f"{value:.0f}"


def _ratio(value: float, ref: float) -> str:
    if math.isinf(value) or math.isinf(ref) or math.isnan(ref):
        return "-"
    return f"{value / ref:.2f}"


# --- the command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Simulated searches on a recorded surrogate")
    parser.add_argument("spec", help="a built-in spec with a recording, e.g. digits-mlp")
    parser.add_argument(
        "--sides",
        default="all",
        help="comma-separated names, or all (with --summary: the sides to compare)",
    )
    parser.add_argument("--seeds", type=int, default=100, help="reporting seeds 1000, 1001, ...")
    parser.add_argument("--first-seed", type=int, default=REPORT_SEEDS.start)
    parser.add_argument("--budget-epochs", type=int, help="default: 50 full runs' epochs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--patience",
        type=int,
        help="early stopping's patience for every side (default: the spec's; 0 = off), "
        "for the ablation of early stopping (write to its own --out)",
    )
    parser.add_argument("--out", type=Path, help="default: benchmarks/hpobench/sim-<spec>.json")
    parser.add_argument("--summary", action="store_true", help="print the table and stop")
    parser.add_argument(
        "--target-quantile",
        type=float,
        help="with --summary: another target, the surrogate's noisy top (1 - q), e.g. 0.99",
    )
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from benchmarks.hpobench.surrogate import SurrogateTask

    out = args.out or Path(__file__).resolve().parent / f"sim-{args.spec}.json"
    if args.summary:
        data = json.loads(out.read_text())
        results = Results(out, {k: v for k, v in data["meta"].items() if k != "format"})
        target = None
        if args.target_quantile is not None:
            target = SurrogateTask.load(args.spec).target(args.target_quantile)
        if args.sides != "all":  # only these sides, on the seeds they all have
            chosen = set(args.sides.split(","))
            results.outcomes = {k: o for k, o in results.outcomes.items() if k[0] in chosen}
        print(summary(results, target=target))
        return
    spec = load_spec(args.spec)
    task = SurrogateTask.load(args.spec)
    sides = list(SIDES) if args.sides == "all" else args.sides.split(",")
    unknown = sorted(set(sides) - set(ALL_SIDES))
    if unknown:
        parser.error(f"unknown sides {unknown}: choose from {sorted(ALL_SIDES)} or all")
    meta = {
        "spec": args.spec,
        "budget_epochs": args.budget_epochs or 50 * task.epochs,
        "workers": args.workers,
        "patience": spec.train.patience if args.patience is None else args.patience,
        "target": task.target(0.95),  # noisy runs' top 5% (SurrogateTask.target)
        "target_kind": "SurrogateTask.target(0.95), noisy",
        "model": task.model_name,  # the surrogate's model (choose_model's)
    }
    results = Results(out, meta)
    seeds = range(args.first_seed, args.first_seed + args.seeds)

    def done(outcome: Outcome) -> None:
        print(
            f"{outcome.side} seed {outcome.seed}: {outcome.trials} trials, best "
            f"{outcome.best:.4f}, to target {outcome.epochs_to_target} epochs, "
            f"{outcome.seconds:.1f} s",
            flush=True,
        )

    run_all(task, results, sides=sides, seeds=seeds, spec=spec, on_done=done)
    print(summary(results))


if __name__ == "__main__":
    main()
