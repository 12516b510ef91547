"""The built-in `mnist-mlp-tradeoff` (dev accuracy against parameters) with TPE and NSGA-II.

Each sampler runs the same budget (`--n-trials`, 2 worker processes, hpstudy's own pruning for
several objectives) for each seed in a fresh SQLite file. Reported per run: the Pareto front
(trial, dev accuracy, parameters), its hypervolume in (1 - dev accuracy, params / the
largest network the space holds) against the reference point (1, 1), trials pruned, epochs
trained, wall time; then the median hypervolume per sampler.

    .venv/bin/python benchmarks/tradeoff_mnist.py --seeds 0 1 2 --n-trials 30
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
from tradeoff_pruning import hypervolume

import studies
from search_space import Categorical
from studies.storage import pareto_front

SAMPLERS: dict[str, dict[str, Any]] = {
    "tpe": {"name": "tpe", "n_startup_trials": 10},  # the built-in spec's
    "nsgaii pop10": {"name": "nsgaii", "population_size": 10},
}


def mlp_params(hidden: list[int], inputs: int = 784, classes: int = 10) -> int:
    """Trainable parameters of the spec's MLP: linear layers, and batch norm's scale and shift."""
    sizes = [inputs, *hidden, classes]
    return sum(a * b + b for a, b in itertools.pairwise(sizes)) + 2 * sum(hidden)


def run(seed: int, sampler: str, n_trials: int, workers: int) -> dict[str, Any]:
    spec = studies.spec_of("mnist-mlp-tradeoff")
    hidden = spec.space.get("hidden")
    assert isinstance(hidden, Categorical)
    largest = max(mlp_params(list(h)) for h in hidden.choices if isinstance(h, (list, tuple)))
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'study.db'}"
        started = time.perf_counter()
        study = studies.run(
            "mnist-mlp-tradeoff",
            workers=workers,
            progress=False,
            storage=url,
            seed=seed,
            n_trials=n_trials,
            sampler=SAMPLERS[sampler],
        )
        seconds = time.perf_counter() - started
        front = sorted(pareto_front(study), key=lambda t: t.values[1])
        epochs = epochs_trained(study, url)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    points = [(1.0 - t.values[0], t.values[1] / largest) for t in front]
    return {
        "seed": seed,
        "sampler": sampler,
        "n_trials": n_trials,
        "seconds": round(seconds, 1),
        "epochs": epochs,
        "pruned": pruned,
        "hypervolume": round(hypervolume(points), 5),
        "front": [
            {
                "trial": t.number,
                "dev_accuracy": t.values[0],
                "params": int(t.values[1]),
                "hidden": t.params.get("hidden"),
            }
            for t in front
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/tradeoff_mnist.json")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        for sampler in SAMPLERS:
            result = run(seed, sampler, args.n_trials, args.workers)
            runs.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "front"}), flush=True)
            Path(args.out).write_text(json.dumps(runs, indent=1) + "\n")
    for sampler in SAMPLERS:
        volumes = [r["hypervolume"] for r in runs if r["sampler"] == sampler]
        print(f"{sampler}: hypervolume median {statistics.median(volumes):.5f} of {volumes}")


if __name__ == "__main__":
    main()
