"""Does hpstudy's own pruning keep a multi-objective front? digits, accuracy against size.

A two-objective study (dev accuracy up, trainable parameters down) over MLP width and depth,
learning rate and dropout, run through the real runner (one worker process, a fresh SQLite
file each time) for each sampler seed, once without pruning and once per pruner candidate
(hpstudy's successive halving over the epoch table, `studies.workers.EpochHalving`). Reported
per run: epochs trained (every epoch of every trial), trials pruned, wall time, and the
hypervolume of the front (feasible complete trials) in (1 - dev accuracy, params / the
space's largest network's params) against the reference point (1, 1); then per candidate the
median epochs saved against no pruning and the hypervolume relative to no pruning's.

With `--samplers` it compares samplers instead, each with hpstudy's pruning (min_resource 1,
reduction 3), by the same hypervolume: TPE (hpstudy's default), NSGA-II with a population
that fits the budget, and random sampling as the floor.

    .venv/bin/python benchmarks/tradeoff_pruning.py                  # seeds 0 1 2, 30 trials
    .venv/bin/python benchmarks/tradeoff_pruning.py --seeds 0 --n-trials 12
    .venv/bin/python benchmarks/tradeoff_pruning.py --samplers \\
        --out benchmarks/tradeoff_samplers.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from pruning import epochs_trained

from studies import StudySpec
from studies.storage import pareto_front
from studies.workers import run_study

EPOCHS = 15
WIDTHS = [[16], [32], [64], [128], [32, 16], [64, 32], [128, 64], [64, 64, 32]]
CANDIDATES: dict[str, dict[str, Any]] = {
    "none": {"name": "none"},
    "halving min1 eta3": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3},
    "halving min2 eta3": {"name": "successive_halving", "min_resource": 2, "reduction_factor": 3},
}


SAMPLER_CANDIDATES: dict[str, dict[str, Any]] = {
    "tpe": {"name": "tpe", "n_startup_trials": 8},
    "nsgaii pop10": {"name": "nsgaii", "population_size": 10},
    "random": {"name": "random"},
}
HALVING = CANDIDATES["halving min1 eta3"]


def params_of(hidden: list[int], inputs: int = 64, classes: int = 10) -> int:
    sizes = [inputs, *hidden, classes]
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


LARGEST = max(params_of(h) for h in WIDTHS)


def spec_for(
    seed: int,
    pruner: dict[str, Any],
    n_trials: int,
    url: str,
    sampler: dict[str, Any] = SAMPLER_CANDIDATES["tpe"],
) -> StudySpec:
    return StudySpec.from_dict(
        {
            "study": {
                "name": "tradeoff",
                "storage": url,
                "objectives": {"dev_accuracy": "max", "params": "min"},
                "n_trials": n_trials,
                "seed": seed,
                "sampler": dict(sampler),
                "pruner": pruner,
            },
            "train": {
                "dataset": "digits",
                "epochs": EPOCHS,
                "batch_size": 32,
                "dev_fraction": 0.2,
                "optimizer": "adam",
            },
            "space": {
                "hidden": {"choices": WIDTHS},
                "lr": {"low": 1e-4, "high": 0.1, "log": True},
                "dropout": {"low": 0.0, "high": 0.5},
            },
        },
        source="benchmarks/tradeoff_pruning.py",
    )


def hypervolume(points: list[tuple[float, float]]) -> float:
    """The area dominated by `points` (losses, both minimised) inside [0, 1] x [0, 1]."""
    area, best_y = 0.0, 1.0
    for x, y in sorted(points):  # by the first loss; each point adds the strip below best_y
        if y < best_y and x < 1.0:
            area += (1.0 - x) * (best_y - y)
            best_y = y
    return area


def measure(seed: int, label: str, n_trials: int, *, samplers: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'study.db'}"
        if samplers:
            spec = spec_for(seed, HALVING, n_trials, url, SAMPLER_CANDIDATES[label])
        else:
            spec = spec_for(seed, CANDIDATES[label], n_trials, url)
        started = time.perf_counter()
        study = run_study(spec, workers=1, echo=lambda _line: None)
        seconds = time.perf_counter() - started
        epochs = epochs_trained(study, url)
        front = [(1.0 - t.values[0], t.values[1] / LARGEST) for t in pareto_front(study)]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return {
        "seed": seed,
        "sampler" if samplers else "pruner": label,
        "epochs": epochs,
        "pruned": pruned,
        "seconds": round(seconds, 1),
        "front": len(front),
        "hypervolume": round(hypervolume(front), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--samplers", action="store_true", help="compare samplers instead")
    parser.add_argument("--out", default="benchmarks/tradeoff_pruning.json")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        for label in SAMPLER_CANDIDATES if args.samplers else CANDIDATES:
            run = measure(seed, label, args.n_trials, samplers=args.samplers)
            print(json.dumps(run), flush=True)
            runs.append(run)
    if args.samplers:
        summary = {
            label: [r["hypervolume"] for r in runs if r["sampler"] == label]
            for label in SAMPLER_CANDIDATES
        }
        print(json.dumps(summary))
        Path(args.out).write_text(json.dumps({"runs": runs, "summary": summary}, indent=1) + "\n")
        return
    base = {r["seed"]: r for r in runs if r["pruner"] == "none"}
    summary = {}
    for label in CANDIDATES:
        if label == "none":
            continue
        mine = [r for r in runs if r["pruner"] == label]
        saved = [1 - r["epochs"] / base[r["seed"]]["epochs"] for r in mine]
        ratio = [r["hypervolume"] / base[r["seed"]]["hypervolume"] for r in mine]
        summary[label] = {
            "median_epochs_saved": round(statistics.median(saved), 3),
            "hypervolume_vs_none": [round(v, 4) for v in ratio],
            "worst_hypervolume_vs_none": round(min(ratio), 4),
        }
        print(label, json.dumps(summary[label]))
    Path(args.out).write_text(json.dumps({"runs": runs, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
