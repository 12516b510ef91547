"""Which pruner should a built-in study use? Several candidates on the same study and seeds.

Each candidate runs the same built-in study (default digits-mlp) through the real runner (one
worker process, a fresh SQLite file each time) for each sampler seed; reported per run: epochs
trained (every epoch of every trial), epochs spent in the first five trials (what a pruner that
waits for finished trials cannot save), wall time, the best value and the pruned count; then
per candidate the median epochs saved against no pruner and the worst gap in best value.

    .venv/bin/python benchmarks/pruner_choice.py                        # digits-mlp, seeds 0 1 2
    .venv/bin/python benchmarks/pruner_choice.py --spec mnist-mlp --n-trials 12 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from studies import load_spec
from studies.storage import EpochStore, create_engine
from studies.workers import run_study

CANDIDATES: dict[str, dict[str, Any]] = {
    "none": {"name": "none"},
    "median (before)": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 3},
    "asha eta3": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3},
    "asha eta3 bootstrap2": {
        "name": "successive_halving",
        "min_resource": 1,
        "reduction_factor": 3,
        "bootstrap_count": 2,
    },
    "hyperband eta3": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
    "asha eta3 min2": {"name": "successive_halving", "min_resource": 2, "reduction_factor": 3},
    "asha eta2": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 2},
    "median early": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
    "percentile 40 early": {
        "name": "percentile",
        "percentile": 40.0,
        "n_startup_trials": 2,
        "n_warmup_steps": 1,
    },
}


def epochs_by_trial(study: optuna.Study, url: str) -> dict[int, int]:
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.get_study_id_from_name(study.study_name)
    ids = {
        storage.get_trial_id_from_study_id_trial_number(study_id, t.number): t.number
        for t in study.trials
    }
    engine = create_engine(url)
    try:
        counts = EpochStore(engine).counts(list(ids))
    finally:
        engine.dispose()
    return {ids[trial_id]: n for trial_id, n in counts.items()}


def measure(spec_name: str, seed: int, label: str, n_trials: int | None) -> dict[str, Any]:
    spec = load_spec(spec_name)
    spec = spec.replace(seed=seed, pruner=CANDIDATES[label], n_trials=n_trials or spec.n_trials)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'study.db'}"
        started = time.perf_counter()
        study = run_study(spec.replace(storage=url), workers=1, echo=lambda _line: None)
        seconds = time.perf_counter() - started
        epochs = epochs_by_trial(study, url)
    states = [t.state for t in study.trials]
    return {
        "seed": seed,
        "pruner": label,
        "epochs": sum(epochs.values()),
        "first5": sum(n for number, n in epochs.items() if number < 5),
        "seconds": round(seconds, 1),
        "best": min(
            (t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE),
            default=float("nan"),
        ),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "trials": len(states),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="digits-mlp")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pruners", nargs="+", default=list(CANDIDATES), choices=CANDIDATES)
    parser.add_argument("--n-trials", type=int)
    parser.add_argument("--json", help="append each run as a JSON line to this file")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("HPSTUDY_THREADS", "1")
    print(f"# {args.spec}, load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    runs = []
    for seed in args.seeds:
        for label in args.pruners:
            run = measure(args.spec, seed, label, args.n_trials)
            runs.append(run)
            print(json.dumps(run), flush=True)
            if args.json:
                with open(args.json, "a") as file:
                    file.write(json.dumps(run) + "\n")
    print("\n| pruner | seed | epochs | first 5 trials | wall s | best | pruned/trials |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for run in runs:
        print(
            f"| {run['pruner']} | {run['seed']} | {run['epochs']} | {run['first5']} | "
            f"{run['seconds']} | {run['best']:.4f} | {run['pruned']}/{run['trials']} |"
        )
    if "none" in args.pruners:
        print("\n| pruner | median epochs saved vs none | worst best-value gap vs none |")
        print("|---|---:|---:|")
        for label in args.pruners:
            saved, gaps = [], []
            for seed in args.seeds:
                mine = next(r for r in runs if r["seed"] == seed and r["pruner"] == label)
                none = next(r for r in runs if r["seed"] == seed and r["pruner"] == "none")
                saved.append(1 - mine["epochs"] / none["epochs"])
                gaps.append(mine["best"] - none["best"])
            print(f"| {label} | {statistics.median(saved):.0%} | {max(gaps):+.4f} |")


if __name__ == "__main__":
    main()
