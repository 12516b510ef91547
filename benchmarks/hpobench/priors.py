"""Priors from earlier studies on a surrogate (issue 28, part 4): a new seed of the same spec,
with and without the earlier study's best configurations first.

For each seed `s`, an *earlier* study runs hpstudy's side (`simulate.SIDES["hpstudy"]`: the
spec's sampler and pruner) with seed `s + EARLIER_OFFSET` and `--earlier-budget` epochs (300
by default: about what the spec's 30 trials with its pruner train), as a user's finished
study. Then the *new* study runs with seed `s`:

- `hpstudy`: no priors (the sampler alone), as `simulate`'s side of that name;
- `priors-K`: the same, with the best K distinct complete configurations of the earlier study
  enqueued first, as `hpstudy run` does (`studies.workers._priors`, `PRIOR_TRIALS`); each is a
  new noisy draw of its curve (a new training seed), not the earlier run replayed.

Cost and target as in `simulate` (epochs trained until the best dev loss reaches the top-5%
target, 2 workers); the new study's budget is 400 epochs by default (the target falls near
100-200 epochs on digits; a seed that misses it counts as not reached). Tuning seeds 0-19
choose K; reporting seeds are 1000+.

From the repository root (resumable; results saved after each (side, seed)):

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.priors digits-mlp --sides \\
        hpstudy,priors-1,priors-3,priors-5 --first-seed 0 --seeds 10 \\
        --out benchmarks/hpobench/priors-digits-mlp-tuning.json
    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.priors digits-mlp --sides \\
        hpstudy,priors-3 --seeds 20 --out benchmarks/hpobench/priors-digits-mlp.json
"""

from __future__ import annotations

import argparse
import functools
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from benchmarks.hpobench.simulate import (
    REPORT_SEEDS,
    SIDES,
    Outcome,
    Policy,
    Results,
    SideFactory,
    Task,
    bootstrap_median,
    simulate,
)
from studies import StudySpec, load_spec

EARLIER_OFFSET = 10_000  # the earlier study of seed s runs with seed s + this
PRIOR_SIDE = re.compile(r"priors-(\d+)")


def earlier_best(
    task: Task, spec: StudySpec, *, seed: int, budget_epochs: int, target: float, workers: int
) -> list[tuple[dict[str, Any], float]]:
    """The earlier study's complete trials, best first: (params, best dev loss)."""
    kept: list[Policy] = []

    def capture(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
        policy = SIDES["hpstudy"](task, spec, seed, rng)
        kept.append(policy)
        return policy

    simulate(
        task,
        "earlier",
        seed=seed,
        budget_epochs=budget_epochs,
        target=target,
        spec=spec,
        workers=workers,
        sides={"earlier": capture},
    )
    done = kept[0].study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ranked = sorted((t for t in done if math.isfinite(t.value)), key=lambda t: t.value)
    return [(dict(t.params), float(t.value)) for t in ranked]


def priors_side(configs: Sequence[dict[str, Any]]) -> SideFactory:
    """hpstudy's side with `configs` enqueued first (as `hpstudy run` enqueues priors)."""

    def factory(task: Task, spec: StudySpec, seed: int, rng: np.random.Generator) -> Policy:
        policy = SIDES["hpstudy"](task, spec, seed, rng)
        for config in configs:
            policy.study.enqueue_trial(config)
        return policy

    return factory


def distinct(ranked: Sequence[tuple[dict[str, Any], float]], k: int) -> list[dict[str, Any]]:
    chosen: list[dict[str, Any]] = []
    for params, _ in ranked:
        if params not in chosen:
            chosen.append(params)
        if len(chosen) == k:
            break
    return chosen


def run(
    task: Task, spec: StudySpec, results: Results, *, sides: Sequence[str], seeds: Sequence[int]
) -> None:
    meta = results.meta
    common = {
        "budget_epochs": int(meta["budget_epochs"]),
        "target": float(meta["target"]),
        "workers": int(meta["workers"]),
    }
    before = {**common, "budget_epochs": int(meta["earlier_budget_epochs"])}
    for seed in seeds:
        earlier = functools.cache(
            lambda seed=seed: earlier_best(task, spec, seed=seed + EARLIER_OFFSET, **before)
        )
        for side in sides:
            if (side, seed) in results:
                continue
            found = PRIOR_SIDE.fullmatch(side)
            factory = (
                SIDES["hpstudy"]
                if found is None
                else priors_side(distinct(earlier(), int(found.group(1))))
            )
            outcome = simulate(
                task,
                side,
                seed=seed,
                spec=spec,
                patience=int(meta["patience"]),
                sides={side: factory},
                **common,
            )
            results.add(outcome)
            print(
                f"{side} seed {seed}: best {outcome.best:.4f}, to target "
                f"{outcome.epochs_to_target} epochs, {outcome.seconds:.1f} s",
                flush=True,
            )


def table(results: Results, *, reference: str = "hpstudy") -> str:
    """Epochs to the target per side (median, bootstrap 95% interval, over the seeds every
    side has), the share reached, the ratio to `reference`, the best at 25% of the budget."""
    sides = sorted({side for side, _ in results.outcomes}, key=lambda s: (s != reference, s))
    seeds = sorted(
        set.intersection(*({n for s, n in results.outcomes if s == side} for side in sides))
    )
    budget = int(results.meta["budget_epochs"])
    lines = [
        f"target {results.meta['target']:.4g}, budget {budget} epochs, "
        f"{results.meta['workers']} workers; seeds {seeds[0]}-{seeds[-1]} ({len(seeds)})",
        "",
        f"| side | epochs to target (median, 95% CI) | reached | ratio to {reference} "
        "| best at 10% | best at 25% |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    medians = {}
    for side in sides:
        outs: list[Outcome] = [results.outcomes[side, seed] for seed in seeds]
        spent = [math.inf if o.epochs_to_target is None else o.epochs_to_target for o in outs]
        medians[side] = bootstrap_median(spent)
    ref = medians[reference][0]
    for side in sides:
        outs = [results.outcomes[side, seed] for seed in seeds]
        median, low, high = medians[side]
        reached = sum(o.epochs_to_target is not None for o in outs) / len(outs)
        best10 = np.median([o.best_at(0.10 * budget) for o in outs])
        best25 = np.median([o.best_at(0.25 * budget) for o in outs])
        ratio = "-" if math.isinf(median) or math.isinf(ref) else f"{median / ref:.2f}"
        lines.append(
            f"| {side} | {_n(median)} ({_n(low)}-{_n(high)}) | {reached:.0%} | {ratio} "
            f"| {best10:.4f} | {best25:.4f} |"
        )
    return "\n".join(lines)


def _n(value: float) -> str:
    return ">budget" if math.isinf(value) else f"{value:.0f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Priors from an earlier study, simulated")
    parser.add_argument("spec", help="a built-in spec with a recording, e.g. digits-mlp")
    parser.add_argument("--sides", default="hpstudy,priors-3")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=REPORT_SEEDS.start)
    parser.add_argument("--budget-epochs", type=int, default=400, help="the new study's")
    parser.add_argument("--earlier-budget", type=int, default=300, help="the earlier study's")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", action="store_true", help="print the table and stop")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from benchmarks.hpobench.surrogate import SurrogateTask

    sides = args.sides.split(",")
    bad = [s for s in sides if s != "hpstudy" and PRIOR_SIDE.fullmatch(s) is None]
    if bad:
        parser.error(f"unknown sides {bad}: hpstudy or priors-K (K configurations first)")
    spec = load_spec(args.spec)
    task = SurrogateTask.load(args.spec)
    meta = {
        "spec": args.spec,
        "budget_epochs": args.budget_epochs,
        "earlier_budget_epochs": args.earlier_budget,
        "workers": args.workers,
        "patience": spec.train.patience,
        "target": task.target(0.95),
        "target_kind": "SurrogateTask.target(0.95), noisy",
        "earlier": f"hpstudy side, seed + {EARLIER_OFFSET}",
    }
    results = Results(args.out, meta)
    if not args.summary:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        run(task, spec, results, sides=sides, seeds=seeds)
    print(table(results))


if __name__ == "__main__":
    main()
