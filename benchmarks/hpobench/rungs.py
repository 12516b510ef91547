"""Rungs inside the first epoch against whole-epoch rungs, replayed on recorded curves.

As `extrapolate.py` replays pruning rules (read its module docstring: one order of the
configurations per seed, each judged against those before it in a real in-memory Optuna
study), but a rule here may also see points inside the first epoch, as `[train] fractions`
gives them: each configuration's recorded dev loss after a stratified 1/27, 1/9 or 1/3 of
its first epoch (`<spec>-fractions.jsonl.gz`, same configuration and seed; its first epoch
was trained in the stratified order, so its points are of a run of their own, not of the
whole-epoch recording's), then its whole-epoch curve. Steps are hpstudy's (`report_step`):
the epochs trained in units of the smallest fraction.

Scores, the mean over orders:

- compute saved: 1 - (what the configurations cost) / (configurations x epochs), a point
  inside the epoch costing its share of the epoch plus one dev evaluation (the recording's
  measured `eval_cost`), a whole epoch 1;
- top-3 stopped: how often a configuration whose recorded best dev loss (whole epochs) is
  among the 3 lowest of the recording was stopped, over every order (issue 28's bar for
  extrapolation: at most 5%);
- best kept: the orders in which the best configuration trained to its end.

Orders 0-19 are for choosing (tuning), 1000-1049 for reporting. From the repository root:

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.rungs mnist-mlp --seeds 50
    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.rungs digits-mlp --seeds 50
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna

from benchmarks.hpobench.extrapolate import load_curves
from benchmarks.hpobench.record import default_path
from benchmarks.hpobench.simulate import REPORT_SEEDS, first_epoch_points
from benchmarks.hpobench.surrogate import Partials, fractions_path


@dataclasses.dataclass(frozen=True)
class Rule:
    """Successive halving (reduction factor 3) at `min_resource` steps, the steps counting
    `fractions[0]` of an epoch (or whole epochs without fractions)."""

    fractions: tuple[float, ...]
    min_resource: int

    def pruner(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=self.min_resource, reduction_factor=3
        )


RULES: dict[str, Rule] = {
    "halving min 2 (epochs; issue 12's default)": Rule((), 2),
    "halving min 1 (epochs; the built-in specs' since issue 28)": Rule((), 1),
    "halving, fractions 1/3 (rungs 1/3, 1, 3, 9)": Rule((1 / 3,), 1),
    "halving, fractions 1/9, 1/3 (rungs 1/9, 1/3, 1, 3, 9)": Rule((1 / 9, 1 / 3), 1),
    "halving, fractions 1/27, 1/9, 1/3 (rungs 1/27 ... 9)": Rule((1 / 27, 1 / 9, 1 / 3), 1),
}


@dataclasses.dataclass(frozen=True)
class Score:
    """A rule over several orders."""

    rule: str
    saved: float
    top_stopped: int
    top_runs: int
    best_kept: float

    def line(self) -> str:
        share = self.top_stopped / self.top_runs
        return (
            f"| {self.rule} | {self.saved:.1%} | {share:.1%} ({self.top_stopped}/"
            f"{self.top_runs}) | {self.best_kept:.0%} |"
        )


def score(
    curves: np.ndarray, partials: Partials, rule: Rule, name: str, seeds: Sequence[int]
) -> Score:
    """`rule` replayed over one order per seed (see the module)."""
    configs, epochs = curves.shape
    chosen, shares, costs = first_epoch_points(
        partials.fractions, partials.eval_cost, rule.fractions, epochs
    )
    unit = rule.fractions[0] if rule.fractions else 1.0
    steps = [round(share / unit) for share in shares]
    top = np.argsort(curves.min(axis=1))[:3]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    saved, stops, kept = [], 0, 0
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(configs)
        study = optuna.create_study(
            pruner=rule.pruner(), sampler=optuna.samplers.RandomSampler(seed=0)
        )
        spent, stopped = 0.0, np.zeros(configs, dtype=bool)
        for index in order:
            values = np.r_[partials.dev_loss[index, chosen], curves[index]]
            trial = study.ask()
            for point, (value, step) in enumerate(zip(values, steps, strict=True)):
                trial.report(float(value), step)
                spent += costs[point]
                if point < len(values) - 1 and trial.should_prune():
                    stopped[index] = True
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    break
            else:
                study.tell(trial, float(curves[index].min()))
        saved.append(1 - spent / (configs * epochs))
        stops += int(stopped[top].sum())
        kept += int(not stopped[top[0]])
    return Score(name, float(np.mean(saved)), stops, 3 * len(seeds), kept / len(seeds))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rungs inside the first epoch, replayed")
    parser.add_argument("spec", help="a built-in spec with both recordings, e.g. mnist-mlp")
    parser.add_argument("--seeds", type=int, default=50, help="orders, one per seed")
    parser.add_argument("--first-seed", type=int, default=REPORT_SEEDS.start)
    args = parser.parse_args(argv)
    path = default_path(args.spec)
    curves = load_curves(args.spec, path)
    partials = Partials.load(fractions_path(Path(path)))
    count = min(len(curves), len(partials.params))
    curves = curves[:count]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(
        f"{args.spec}: {count} configurations x {curves.shape[1]} epochs, a dev evaluation "
        f"{partials.eval_cost:.3f} epochs, orders of seeds {seeds.start}-{seeds.stop - 1}"
    )
    print("| rule | compute saved | top-3 stopped | best kept |")
    print("| --- | ---: | ---: | ---: |")
    for name, rule in RULES.items():
        print(score(curves, partials, rule, name, seeds).line(), flush=True)


if __name__ == "__main__":
    main()
