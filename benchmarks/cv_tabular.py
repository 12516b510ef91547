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

Each study's best trial is exported and trained again with `studies.train(path, test=True)`:
a `folds = 1` trial as it trained (its best epoch's weights), a `folds = 5` trial as one
network on all training rows for the median of its folds' best epochs (the export's rule).

scikit-learn: `StandardScaler` + `LogisticRegression` (lbfgs, C = 1, max_iter 10,000) fitted
on the same training rows and scored on the same test rows.

Run from the repository root (one torch thread; minutes per study, see RESULTS.md):

    .venv/bin/python benchmarks/cv_tabular.py --trials 20 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 5])
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
                figures, path = search_and_test(s, folder=folder, threads=args.threads)
                check_test_rows(path, arrays)
                kept = _provenance(path).folds or {}
                figures.pop("train_log")
                run = {"data": name, "seed": seed, "folds": folds, **figures}
                run["fold_values"] = kept.get("values")
                run["fold_std"] = kept.get("std")
                runs.append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "best_params"}), flush=True)
    (folder / "runs.json").write_text(json.dumps(runs, indent=1))
    print_table(runs, baselines)
    print(f"load average after: {load_average()}")


def _provenance(path: Path) -> Provenance:
    from trainer import read_config_file

    return Provenance.from_dict(read_config_file(path)["provenance"])


def print_table(runs: list[dict[str, Any]], baselines: dict[str, tuple[int, int, float]]) -> None:
    print()
    print(
        "| data | folds | study seed | test accuracy | best trial's dev loss (± std over folds) "
        "| retrained epochs | trials complete / pruned | study wall (s) | retrain (s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for run in runs:
        n = baselines[run["data"]][1]
        correct = round(run["test_accuracy"] * n)
        spread = f" ± {run['fold_std']:.4f}" if run["fold_std"] is not None else ""
        print(
            f"| {run['data']} | {run['folds']} | {run['seed']} | "
            f"{100 * run['test_accuracy']:.2f}% ({correct}/{n}) | {run['best_value']:.4f}{spread} "
            f"| {run['retrain_epochs']} | {run['complete']} / {run['pruned']} | "
            f"{run['wall_s']:.0f} | {run['retrain_s']:.1f} |"
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
            if not group:
                continue
            med = statistics.median(r["test_accuracy"] for r in group)
            wall = sum(r["wall_s"] for r in group)
            each = ", ".join(f"{100 * r['test_accuracy']:.2f}%" for r in group)
            print(
                f"  folds = {folds}: median test accuracy {100 * med:.2f}% "
                f"({100 * (med - reference):+.2f} points), per seed "
                f"{each}; "
                f"studies {wall:.0f} s in all"
            )


if __name__ == "__main__":
    main()
