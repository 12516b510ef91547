"""Learning-curve extrapolation against successive halving, replayed on recorded curves.

Each recorded configuration's whole dev-loss curve is replayed, one configuration after the
other in a random order (one order per seed), through a real Optuna study (in memory, one
worker) with the pruner under test: the configuration reports its recorded dev loss after
each epoch and stops when the pruner says so, judged against the configurations replayed
before it (as a live study's pruner sees the trials before). A rule is scored by:

- epochs saved: 1 - epochs trained / (configurations x epochs), the mean over orders;
- top-3 stopped: how often a configuration whose recorded best dev loss is among the 3 lowest
  of the whole recording was stopped (over every order, 3 such configurations each); issue
  28's goal is at most 5%;
- best kept: how often the single best configuration trained to the end.

The rules (`RULES`): Optuna's `SuccessiveHalvingPruner` (reduction factor 3, min_resource 1
or 2), and hpstudy's `ExtrapolatingPruner` (`extrapolate` in a spec) at the same rungs, with
`max_resource` the recording's epochs, `bound = 0` (a loss) and k = 3, either alone
(`halving = false`) or requiring halving's rule too, at several probability thresholds.

Seeds: orders 0-19 (`TUNING_SEEDS`) chose the rule; the figures reported are of orders
1000-1049 (from `REPORT_SEEDS`). Diverged runs replay as the surrogate's `Curves` fill them.
From the repository root (the mnist-mlp recording may be read while another process appends
to it; the configurations recorded so far are used):

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.extrapolate digits-mlp --first-seed 0 \\
        --seeds 20
    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.extrapolate digits-mlp --seeds 50
    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.extrapolate mnist-mlp --seeds 50
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import optuna

from benchmarks.hpobench.record import default_path, read
from benchmarks.hpobench.simulate import REPORT_SEEDS
from benchmarks.hpobench.surrogate import Curves, _classes
from studies.spec import ExtrapolatingPruner

PrunerFactory = Callable[[int], optuna.pruners.BasePruner]  # of the curves' epochs


def _halving(min_resource: int) -> PrunerFactory:
    return lambda epochs: optuna.pruners.SuccessiveHalvingPruner(
        min_resource=min_resource, reduction_factor=3
    )


def _extrapolating(min_resource: int, probability: float, *, halving: bool) -> PrunerFactory:
    return lambda epochs: ExtrapolatingPruner(
        min_resource=min_resource,
        reduction_factor=3,
        k=3,
        probability=probability,
        max_resource=epochs,
        halving=halving,
        bound=0.0,
    )


RULES: dict[str, PrunerFactory] = {
    "halving min 1": _halving(1),
    "halving min 2": _halving(2),
    **{
        f"extrapolate min {m}{' + halving' if h else ''} p {p}": _extrapolating(m, p, halving=h)
        for m in (1, 2)
        for h in (False, True)
        for p in (0.01, 0.05, 0.2, 0.5)
    },
}


@dataclasses.dataclass(frozen=True)
class Replay:
    """One rule over one order of the configurations."""

    trained: np.ndarray  # (configs,) epochs each configuration trained, by its index
    stopped: np.ndarray  # (configs,) bool: pruned before its last epoch


def replay(curves: np.ndarray, order: Sequence[int], pruner: optuna.pruners.BasePruner) -> Replay:
    """Replays the configurations' curves (rows of `curves`) in `order` through `pruner`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    configs, epochs = curves.shape
    trained = np.zeros(configs, dtype=int)
    stopped = np.zeros(configs, dtype=bool)
    for index in order:
        trial = study.ask()
        for epoch in range(1, epochs + 1):
            trial.report(float(curves[index, epoch - 1]), epoch)
            trained[index] = epoch
            if epoch < epochs and trial.should_prune():
                stopped[index] = True
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, float(curves[index].min()))
    return Replay(trained, stopped)


@dataclasses.dataclass(frozen=True)
class Score:
    """A rule over several orders."""

    rule: str
    orders: int
    saved: float  # mean share of the epochs saved
    top_stopped: int  # stops of a top-3 configuration, over all orders
    top_runs: int  # top-3 configurations replayed, over all orders
    best_kept: float  # share of orders where the best configuration trained to the end
    seconds: float

    def line(self) -> str:
        share = self.top_stopped / self.top_runs
        return (
            f"| {self.rule} | {self.saved:.1%} | {share:.1%} ({self.top_stopped}/{self.top_runs})"
            f" | {self.best_kept:.0%} | {self.seconds / self.orders:.1f} |"
        )


def score(curves: np.ndarray, rule: str, seeds: Sequence[int]) -> Score:
    """`rule` replayed over one order per seed."""
    configs, epochs = curves.shape
    top = np.argsort(curves.min(axis=1))[:3]
    tic = time.perf_counter()
    saved, stops, kept = [], 0, 0
    for seed in seeds:
        order = [int(i) for i in np.random.default_rng(seed).permutation(configs)]
        result = replay(curves, order, RULES[rule](epochs))
        saved.append(1 - result.trained.sum() / (configs * epochs))
        stops += int(result.stopped[top].sum())
        kept += int(not result.stopped[top[0]])
    return Score(
        rule=rule,
        orders=len(seeds),
        saved=float(np.mean(saved)),
        top_stopped=stops,
        top_runs=3 * len(seeds),
        best_kept=kept / len(seeds),
        seconds=time.perf_counter() - tic,
    )


def load_curves(spec: str, path: Path | None = None) -> np.ndarray:
    """The recorded dev-loss curves, (configs, epochs), of the configurations recorded so far."""
    meta, records, _ = read(path or default_path(spec))
    if meta is None or not records:
        raise ValueError(f"no recorded curves for {spec!r} at {path or default_path(spec)}")
    return Curves.from_records(meta, records, classes=_classes(meta)).dev_loss


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pruning rules replayed on recorded curves")
    parser.add_argument("spec", help="a built-in spec with a recording, e.g. digits-mlp")
    parser.add_argument("--path", type=Path, help="the recording (default: next to this)")
    parser.add_argument("--seeds", type=int, default=50, help="orders, one per seed")
    parser.add_argument("--first-seed", type=int, default=REPORT_SEEDS.start)
    parser.add_argument("--rules", default="all", help="names from RULES, ';'-separated")
    args = parser.parse_args(argv)
    curves = load_curves(args.spec, args.path)
    rules = list(RULES) if args.rules == "all" else args.rules.split(";")
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        parser.error(f"unknown rules {unknown}: choose from {list(RULES)}")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(
        f"{args.spec}: {curves.shape[0]} configurations x {curves.shape[1]} epochs, "
        f"orders of seeds {seeds.start}-{seeds.stop - 1}"
    )
    print("| rule | epochs saved | top-3 stopped | best kept | s per order |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for rule in rules:
        print(score(curves, rule, seeds).line(), flush=True)


if __name__ == "__main__":
    main()
