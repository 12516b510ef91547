"""Wine and breast cancer: a searched MLP with one dev split against 5-fold CV (issue 22).

Data: scikit-learn's wine (178 rows, 13 features, 3 classes) and breast cancer (569 rows, 30
features, 2 classes), each split once by `train_test_split(test_size=0.2, stratify=y,
random_state=0)` and written to an `.npz` file with `x_train`, `y_train`, `x_test`, `y_test`,
so that hpstudy and scikit-learn use the same rows (wine: 142 train, 36 test; breast cancer:
455 train, 114 test).

hpstudy: `standardize = true`, `model = "mlp"`, metric `dev_loss`, up to `--epochs` epochs
(batch 16, early stopping after `--patience` epochs without a better dev loss), `--trials`
trials, TPE and the median pruner; searched: hidden layers, lr, weight_decay, dropout,
optimizer (and momentum for sgd and rmsprop), as in `wine_standardize.py`. Two variants per
study seed:

- `folds = 1`: one dev split (`dev_fraction = 0.2` of the training rows), as before;
- `folds = 5`: each trial trains 5 networks in lock-step on stratified folds of the training
  rows and scores the mean of their best-epoch dev losses.

Each study's best trial is exported and scored on the test split:

- `folds = 1`: the trial as it trained (its best epoch's weights), `studies.train(path,
  test=True)`;
- `folds = 5`, every way a k-fold trial can be exported (issue 29), from the same study:
  `ensemble`: `studies.export(..., refit="ensemble")` and `studies.train(path, test=True)`,
  which trains the 5 fold networks again and scores the mean of their predictions (and the
  kept ensemble, `export --weights` then `train --weights --test`, which must score the same);
  `retrain`: `refit="retrain"`, one network on all training rows for the median of the folds'
  best epoch + 1 times 5/4 (the whole split's rows over a fold's), and `retrain-median`: the
  same without the 5/4 (the rule before issue 29).

scikit-learn: `StandardScaler` + `LogisticRegression` (lbfgs, C = 1, max_iter 10,000) fitted
on the same training rows and scored on the same test rows.

Run from the repository root (one torch thread; minutes per study, see RESULTS.md):

    .venv/bin/python benchmarks/cv_tabular.py --trials 20 --seeds 0 1 2 --folds 5

Issue 29 chose the k-fold export on study seeds 0, 1, 2 and reports it on seeds 10, 11, 12.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _tabular import TABULAR_SPACE, load_average, search_and_test
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from studies.storage import Provenance

DATASETS = {"wine": load_wine, "breast_cancer": load_breast_cancer}


def write_npz(folder: Path, name: str) -> dict[str, np.ndarray]:
    """The data set's stratified 80/20 split (random_state 0) as `folder/name.npz`."""
    bunch = DATASETS[name]()
    x_tr, x_te, y_tr, y_te = train_test_split(
        bunch.data, bunch.target, test_size=0.2, stratify=bunch.target, random_state=0
    )
    arrays = {
        "x_train": x_tr.astype(np.float32),
        "y_train": y_tr.astype(np.int64),
        "x_test": x_te.astype(np.float32),
        "y_test": y_te.astype(np.int64),
    }
    np.savez(folder / f"{name}.npz", **arrays)
    return arrays


def spec(
    folder: Path, data: str, *, folds: int, seed: int, trials: int, epochs: int, patience: int
) -> dict[str, Any]:
    return {
        "study": {
            "name": f"{data}-f{folds}-s{seed}",
            "storage": f"sqlite:///{folder / 'hpstudy.db'}",
            "metric": "dev_loss",
            "n_trials": trials,
            "seed": seed,
            "sampler": {"name": "tpe", "n_startup_trials": 8},
            "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 10},
            "folder": str(folder),
        },
        "train": {
            "dataset": f"{data}.npz",
            "standardize": True,
            "dev_fraction": 0.2,
            "folds": folds,
            "model": "mlp",
            "hidden": [32],
            "epochs": epochs,
            "batch_size": 16,
            "patience": patience,
        },
        "space": TABULAR_SPACE,
    }


def logistic(arrays: dict[str, np.ndarray]) -> tuple[int, float]:
    """(correct, seconds) of a standardised logistic regression, C = 1."""
    tic = time.perf_counter()
    scaler = StandardScaler().fit(arrays["x_train"])
    model = LogisticRegression(max_iter=10_000).fit(
        scaler.transform(arrays["x_train"]), arrays["y_train"]
    )
    correct = int((model.predict(scaler.transform(arrays["x_test"])) == arrays["y_test"]).sum())
    return correct, time.perf_counter() - tic


def check_test_rows(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """The exported file's test split is the scikit-learn split's test rows, in order."""
    from trainer import TrainConfig, load_data, read_config_file

    exported = read_config_file(path)
    data = load_data(
        TrainConfig.load(path),
        with_test=True,
        standardization=exported["standardization"],
        search_path=[Provenance.from_dict(exported["provenance"]).folder or ""],
        device="cpu",
    )
    assert data.y_test is not None
    assert np.array_equal(data.y_test.numpy(), arrays["y_test"]), "test rows differ"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=200, help="epoch cap of each trial")
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="study seeds")
    parser.add_argument("--folds", type=int, nargs="+", default=[5])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the worker")
    parser.add_argument("--work", type=Path, default=None, help="folder (default: a temp one)")
    args = parser.parse_args()

    folder = args.work or Path(tempfile.mkdtemp(prefix="hpstudy-cv-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"work folder {folder}; load average before: {load_average()}", flush=True)
    runs: list[dict[str, Any]] = []
    baselines: dict[str, tuple[int, int, float]] = {}
    for name in args.data:
        arrays = write_npz(folder, name)
        correct, seconds = logistic(arrays)
        baselines[name] = (correct, len(arrays["y_test"]), seconds)
        for seed in args.seeds:
            for folds in args.folds:
                s = spec(
                    folder,
                    name,
                    folds=folds,
                    seed=seed,
                    trials=args.trials,
                    epochs=args.epochs,
                    patience=args.patience,
                )
                if folds == 1:
                    figures, path = search_and_test(s, folder=folder, threads=args.threads)
                    figures.pop("train_log")
                else:
                    figures, path = search_and_export(s, folder=folder, threads=args.threads)
                check_test_rows(path, arrays)
                kept = _provenance(path).folds or {}
                run = {"data": name, "seed": seed, "folds": folds, **figures}
                run["fold_values"] = kept.get("values")
                run["fold_std"] = kept.get("std")
                run["fold_best_epochs"] = kept.get("best_epochs")
                runs.append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "best_params"}), flush=True)
    (folder / "runs.json").write_text(json.dumps(runs, indent=1))
    print_table(runs, baselines)
    print(f"load average after: {load_average()}")


def search_and_export(
    spec: dict[str, Any], *, folder: Path, threads: int
) -> tuple[dict[str, Any], Path]:
    """Runs a k-fold study and scores its best trial's exports on the test split: the
    ensemble (trained again, and kept), the retrained network (the scaled rule and the plain
    median of best epochs).

    Returns:
        The study's figures with each export's test accuracy, and the ensemble's file.
    """
    import os

    import optuna

    import studies
    from studies.results import best_trial

    os.environ["HPSTUDY_THREADS"] = str(threads)
    name, storage = spec["study"]["name"], spec["study"]["storage"]
    tic = time.perf_counter()
    study = studies.run(spec, workers=1, progress=False)
    wall = time.perf_counter() - tic
    states = [t.state for t in study.trials]
    chosen = best_trial(study)
    quiet: list[str] = []
    figures: dict[str, Any] = {
        "name": name,
        "wall_s": wall,
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "best_trial": chosen.number,
        "best_value": chosen.value,
        "best_params": chosen.params,
    }
    ensemble = folder / f"{name}-ensemble.toml"
    weights = folder / f"{name}-ensemble.pt"
    studies.export(name, storage=storage, output=ensemble, weights=weights, refit="ensemble")
    tic = time.perf_counter()
    _, scores = studies.train(ensemble, test=True, echo=quiet.append)
    figures["ensemble_s"] = time.perf_counter() - tic
    figures["test_accuracy"] = figures["ensemble"] = scores["test_accuracy"]
    _, kept = studies.train(ensemble, weights=str(weights), test=True, echo=quiet.append)
    figures["ensemble_kept"] = kept["test_accuracy"]
    retrain = folder / f"{name}-retrain.toml"
    studies.export(name, storage=storage, output=retrain, refit="retrain")
    tic = time.perf_counter()
    result, scores = studies.train(retrain, test=True, echo=quiet.append)
    figures["retrain_s"] = time.perf_counter() - tic
    figures["retrain"] = scores["test_accuracy"]
    figures["retrain_epochs"] = len(result.epochs) if result is not None else None
    best = [e + 1 for e in (_provenance(retrain).folds or {}).get("best_epochs", []) if e >= 0]
    median = math.ceil(statistics.median(best)) if best else figures["retrain_epochs"]
    _, scores = studies.train(retrain, test=True, overrides={"epochs": median}, echo=quiet.append)
    figures["retrain_median"] = scores["test_accuracy"]
    figures["median_epochs"] = median
    return figures, ensemble


def _provenance(path: Path) -> Provenance:
    from trainer import read_config_file

    return Provenance.from_dict(read_config_file(path)["provenance"])


VARIANTS = ("ensemble", "retrain", "retrain_median")  # a k-fold study's exports


def print_table(runs: list[dict[str, Any]], baselines: dict[str, tuple[int, int, float]]) -> None:
    print()
    print(
        "| data | folds | study seed | ensemble | retrain (x growth) | retrain (median) "
        "| best trial's dev loss (± std over folds) | retrain / median epochs "
        "| trials complete / pruned | study wall (s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for run in runs:
        n = baselines[run["data"]][1]

        def cell(key: str, n: int = n, run: dict[str, Any] = run) -> str:
            value = run.get(key)
            if value is None:
                return "-"
            return f"{100 * value:.2f}% ({round(value * n)}/{n})"

        spread = f" ± {run['fold_std']:.4f}" if run["fold_std"] is not None else ""
        first = "ensemble" if run["folds"] > 1 else "test_accuracy"
        kept = run.get("ensemble_kept")
        if kept is not None and kept != run.get("ensemble"):
            print(f"WARNING: the kept ensemble scored {kept}, trained again {run['ensemble']}")
        print(
            f"| {run['data']} | {run['folds']} | {run['seed']} | {cell(first)} | "
            f"{cell('retrain')} | {cell('retrain_median')} | {run['best_value']:.4f}{spread} "
            f"| {run.get('retrain_epochs')} / {run.get('median_epochs', '-')} | "
            f"{run['complete']} / {run['pruned']} | {run['wall_s']:.0f} |"
        )
    print()
    for name, (correct, n, seconds) in baselines.items():
        reference = correct / n
        print(
            f"{name}: LogisticRegression (standardised, C = 1) {100 * reference:.2f}% "
            f"({correct}/{n}) in {seconds:.2f} s"
        )
        for folds in sorted({r["folds"] for r in runs}):
            group = [r for r in runs if r["data"] == name and r["folds"] == folds]
            for key in VARIANTS if folds > 1 else ("test_accuracy",):
                values = [r[key] for r in group if r.get(key) is not None]
                if not values:
                    continue
                med = statistics.median(values)
                each = ", ".join(f"{100 * v:.2f}%" for v in values)
                seeds = " ".join(str(r["seed"]) for r in group)
                print(
                    f"  folds = {folds}, {key}: median test accuracy {100 * med:.2f}% "
                    f"({100 * (med - reference):+.2f} points), seeds {seeds}: {each}"
                )


if __name__ == "__main__":
    main()
