"""A searched MLP regression (hpstudy) against scikit-learn's RidgeCV on the same rows (issue 11).

Data: scikit-learn's diabetes (442 patients, 10 features in their original units, target
`progression`) as a CSV. The study is the repository's example, `examples/regression-csv/`
(`make_data.py` writes the CSV, `models.py` holds the MLP factory, `diabetes.toml` the spec:
task regression, `standardize = true`, `test_fraction = 0.2`, `dev_fraction = 0.2`, metric
`dev_rmse`; searched lr, weight_decay, dropout and the factory's width and depth). The three
files are copied to the work folder, and the CSV is written there; only the study's name,
storage, seed, `n_trials` (`--trials`) and, when given, `epochs` (`--epochs`) change. Without
the example folder the script writes an equivalent spec and factory itself (`--own-spec`
forces that). The best trial is exported and trained again with
`studies.train(path, test=True)`.

RidgeCV (alphas logspace(-3, 3, 13), leave-one-out CV) is fitted on every row hpstudy does
not hold out as test (its train and dev rows), features standardised with those rows'
statistics, and scored on exactly hpstudy's test rows; the script asserts that the rows are
the same (every split's arrays compared with hpstudy's tensors). A second RidgeCV row is
fitted on hpstudy's train rows only (the rows the MLP's weights see).

Run from the repository root (about 1.5 minutes per study seed on a busy 2-core machine):

    .venv/bin/python benchmarks/regression_vs_ridge.py --trials 30 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import shutil
import statistics
import tempfile
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from _tabular import (
    Split,
    check_split,
    load_average,
    search_and_test,
    split_rows,
    write_csv,
)
from sklearn.datasets import load_diabetes
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "regression-csv"
EXAMPLE_FILES = ("make_data.py", "models.py", "diabetes.toml")
ALPHAS = np.logspace(-3, 3, 13)

MODELS_PY = textwrap.dedent(
    '''
    """An MLP for flat features: `depth` hidden layers of `width` units."""

    from torch import nn


    def build(input_shape, num_classes, width=64, depth=2, dropout=0.0):
        features = input_shape[0]
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU(), nn.Dropout(dropout)]
            features = width
        layers.append(nn.Linear(features, num_classes))
        return nn.Sequential(*layers)
    '''
)


def own_spec(folder: Path) -> dict[str, Any]:
    """Writes diabetes.csv and models.py to `folder`; returns a spec like the example's."""
    bunch = load_diabetes(scaled=False)
    write_csv(folder / "diabetes.csv", bunch.data, bunch.target, bunch.feature_names, "progression")
    (folder / "models.py").write_text(MODELS_PY)
    return {
        "study": {
            "metric": "dev_rmse",
            "sampler": {"name": "tpe", "n_startup_trials": 10},
            "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 20},
        },
        "train": {
            "dataset": "diabetes.csv",
            "target": ["progression"],
            "task": "regression",
            "standardize": True,
            "test_fraction": 0.2,
            "dev_fraction": 0.2,
            "model": "models.py:build",
            "model_args": {"width": 64, "depth": 2},
            "optimizer": "adam",
            "epochs": 300,
            "batch_size": 32,
            "patience": 30,
        },
        "space": {
            "lr": {"low": 1e-4, "high": 3e-2, "log": True},
            "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
            "dropout": {"low": 0.0, "high": 0.5},
            "model_args": {
                "width": {"choices": [16, 32, 64, 128]},
                "depth": {"low": 1, "high": 3},
            },
        },
    }


def example_spec(folder: Path) -> dict[str, Any]:
    """Copies the example's files to `folder`, runs its `write_csv` there; returns its spec."""
    for name in EXAMPLE_FILES:
        shutil.copy(EXAMPLE / name, folder / name)
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()[:12]
        print(f"example file {EXAMPLE / name}: sha256 {digest}")
    loaded = importlib.util.spec_from_file_location("make_data", folder / "make_data.py")
    assert loaded is not None and loaded.loader is not None
    make_data = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(make_data)
    make_data.write_csv(folder / "diabetes.csv")
    return tomllib.loads((folder / "diabetes.toml").read_text())


def read_data(folder: Path, train: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The CSV's features and target as the trainer parses them (float64 from the text)."""
    path = folder / train["dataset"]
    header = path.read_text().split("\n", 1)[0].split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    target = train["target"]
    target = [target] if isinstance(target, str) else list(target)
    assert len(target) == 1, "one target column"
    column = header.index(target[0])
    return np.delete(table, column, axis=1), table[:, column]


def study_spec(
    base: dict[str, Any], folder: Path, *, seed: int, trials: int, epochs: int | None
) -> dict[str, Any]:
    """`base` with this run's name, storage, seed, budget (and epoch cap), in `folder`."""
    spec = {key: dict(value) for key, value in base.items()}
    spec["study"].update(
        name=f"diabetes-s{seed}",
        storage=f"sqlite:///{folder / 'hpstudy.db'}",
        seed=seed,
        n_trials=trials,
        folder=str(folder),
    )
    if epochs is not None:
        spec["train"]["epochs"] = epochs
    return spec


def ridge(x: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, test_rows: np.ndarray) -> dict:
    """RidgeCV on standardised features (statistics of `fit_rows`), scored on `test_rows`."""
    scaler = StandardScaler().fit(x[fit_rows])
    model = RidgeCV(alphas=ALPHAS).fit(scaler.transform(x[fit_rows]), y[fit_rows])
    predicted = model.predict(scaler.transform(x[test_rows]))
    error = predicted - y[test_rows]
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": float(r2_score(y[test_rows], predicted)),
        "alpha": float(model.alpha_),
        "rows": len(fit_rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap (default: spec's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="study seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the worker")
    parser.add_argument("--work", type=Path, default=None, help="folder (default: a temp one)")
    parser.add_argument(
        "--own-spec", action="store_true", help="the script's spec, not examples/regression-csv"
    )
    args = parser.parse_args()

    import trainer

    folder = args.work or Path(tempfile.mkdtemp(prefix="hpstudy-diabetes-"))
    folder.mkdir(parents=True, exist_ok=True)
    use_example = not args.own_spec and all((EXAMPLE / n).is_file() for n in EXAMPLE_FILES)
    base = example_spec(folder) if use_example else own_spec(folder)
    train = base["train"]
    x, y = read_data(folder, train)
    rows: Split = split_rows(
        len(y),
        test_fraction=train["test_fraction"],
        dev_fraction=train.get("dev_fraction", 0.1),
        split_seed=train.get("split_seed", 0),
    )
    source = "examples/regression-csv" if use_example else "the script's own"
    print(
        f"spec: {source}; work folder "
        f"{folder}; hpstudy from {Path(trainer.__file__).parent.parent}; load average "
        f"before: {load_average()}"
    )

    runs = []
    for seed in args.seeds:
        figures, path = search_and_test(
            study_spec(base, folder, seed=seed, trials=args.trials, epochs=args.epochs),
            folder=folder,
            threads=args.threads,
        )
        identity = check_split(path, x, y, rows)
        print("\n".join(figures.pop("train_log")))
        print(f"seed {seed}: {figures}")
        print(f"data: {identity} (rows checked equal to the replicated split)")
        runs.append(figures)
    load_after = load_average()

    pooled = ridge(x, y, rows.pool, rows.test)
    train_only = ridge(x, y, rows.train, rows.test)
    mean_rmse = float(np.sqrt(np.mean((y[rows.test] - y[rows.pool].mean()) ** 2)))
    n_train, n_dev, n_test = len(rows.train), len(rows.dev), len(rows.test)
    print()
    print("| model | fitted on | test RMSE | test R² | search |")
    print("| --- | --- | ---: | ---: | --- |")
    for run in runs:
        print(
            f"| hpstudy MLP, best of study `{run['name']}` (trial {run['best_trial']}, dev RMSE "
            f"{run['best_value']:.2f}, {', '.join(run['diagnosis']) or '-'}) | "
            f"{n_train} train rows, {n_dev} dev rows for selection | "
            f"{run['test_rmse']:.2f} | {run['test_r2']:.3f} | {run['complete']} complete / "
            f"{run['pruned']} pruned / {run['failed']} failed trials, {run['wall_s']:.0f} s |"
        )
    for label, fit in (("train + dev", pooled), ("train only", train_only)):
        print(
            f"| RidgeCV (alpha {fit['alpha']:g}) | {fit['rows']} rows ({label}) | "
            f"{fit['rmse']:.2f} | {fit['r2']:.3f} | LOO over 13 alphas, < 1 s |"
        )
    print(f"| predicting the train + dev mean | {len(rows.pool)} rows | {mean_rmse:.2f} | - | - |")
    if len(runs) > 1:
        med_rmse = statistics.median(r["test_rmse"] for r in runs)
        med_r2 = statistics.median(r["test_r2"] for r in runs)
        print(f"median over {len(runs)} studies: test RMSE {med_rmse:.2f}, R² {med_r2:.3f}")
    for run in runs:
        print(f"{run['name']} best params: {run['best_params']}")
    print(f"test rows: {n_test}; load average after: {load_after}")


if __name__ == "__main__":
    main()
