"""Wine: a searched MLP with and without `standardize` against a logistic regression (issue 11).

Data: scikit-learn's wine (178 wines, 13 unscaled features from ~0.1 to ~1,680 (proline),
3 classes), written to a CSV with the label column `class`; `test_fraction = 0.2` holds out 36
test rows (one test wine is 2.8 points of test accuracy), `dev_fraction = 0.2` leaves 114 train
and 28 dev rows.

hpstudy: one spec, `model = "mlp"`, metric `dev_loss`, up to `--epochs` epochs (batch 16,
early stopping after 30 epochs without a better dev loss), `--trials` trials, TPE and the
median pruner; searched: hidden layers, lr, weight_decay, dropout, optimizer (and momentum for
sgd and rmsprop). It runs twice per study seed, alternating:

- `standardize = true`: each feature standardised with the training rows' statistics;
- `standardize = false`: hpstudy's default, one mean and one deviation over every training
  input (all features together), which leaves proline dominating the others.

Each study's best trial is exported and trained again with `studies.train(path, test=True)`.

scikit-learn: `StandardScaler` + `LogisticRegression` (lbfgs, max_iter 10,000) with the
default C = 1, and with C chosen by 5-fold `LogisticRegressionCV` over logspace(-3, 3, 13),
fitted on every row hpstudy does not hold out as test (train and dev, 142 rows) and scored on
exactly hpstudy's test rows (the script asserts that the rows are the same).

With `--all-trials`, every complete trial of each `standardize = true` study is exported
and trained again with its test rows too (saved to `trials.json` in the work folder), to show
how the trials the study ranks first (dev loss 0 or nearly: every dev wine right with a
saturated softmax) fare on the test rows against the others.

Run from the repository root (about 2.5 minutes per study, and 1 more per study for
`--all-trials`, on a busy 2-core machine):

    .venv/bin/python benchmarks/wine_standardize.py --trials 30 --seeds 0 1 2 --all-trials
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from _tabular import (
    TABULAR_SPACE,
    Split,
    check_split,
    load_average,
    search_and_test,
    split_rows,
    write_csv,
)
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.preprocessing import StandardScaler

TEST_FRACTION, DEV_FRACTION, SPLIT_SEED = 0.2, 0.2, 0
CS = np.logspace(-3, 3, 13)
# A dev loss below this means every dev wine is right with a softmax near 1: the float32
# cross-entropy of such a model rounds to (nearly) 0, whatever its test loss.
SATURATED = 1e-3


def spec(folder: Path, *, seed: int, trials: int, epochs: int, standardize: bool) -> dict:
    kind = "std" if standardize else "global"
    return {
        "study": {
            "name": f"wine-{kind}-s{seed}",
            "storage": f"sqlite:///{folder / 'hpstudy.db'}",
            "metric": "dev_loss",
            "n_trials": trials,
            "seed": seed,
            "sampler": {"name": "tpe", "n_startup_trials": 10},
            "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 20},
            "folder": str(folder),
        },
        "train": {
            "dataset": "wine.csv",
            "target": ["class"],
            "standardize": standardize,
            "test_fraction": TEST_FRACTION,
            "dev_fraction": DEV_FRACTION,
            "split_seed": SPLIT_SEED,
            "model": "mlp",
            "hidden": [32],
            "epochs": epochs,
            "batch_size": 16,
            "patience": 30,
        },
        "space": TABULAR_SPACE,
    }


def logistic(x: np.ndarray, y: np.ndarray, rows: Split) -> dict[str, dict[str, Any]]:
    """Standardised logistic regressions fitted on the pool (train + dev), scored on test."""
    scaler = StandardScaler().fit(x[rows.pool])
    fit_x, test_x = scaler.transform(x[rows.pool]), scaler.transform(x[rows.test])
    out = {}
    models = {
        "C = 1": LogisticRegression(max_iter=10_000),
        "C by 5-fold CV": LogisticRegressionCV(
            Cs=CS,
            cv=5,
            max_iter=10_000,
            scoring="accuracy",
            l1_ratios=(0.0,),
            use_legacy_attributes=True,
        ),
    }
    for label, model in models.items():
        model.fit(fit_x, y[rows.pool])
        correct = int((model.predict(test_x) == y[rows.test]).sum())
        c = float(np.atleast_1d(model.C_)[0]) if hasattr(model, "C_") else float(model.C)
        out[label] = {"correct": correct, "accuracy": correct / len(rows.test), "C": c}
    return out


def test_every_trial(name: str, storage: str, folder: Path) -> list[dict[str, Any]]:
    """Exports every complete trial of a study and trains it again with its test split."""
    import optuna

    import studies

    out = []
    for trial in studies.load(name, storage=storage).trials:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            continue
        path = studies.export(
            name,
            storage=storage,
            output=folder / f"{name}-trial{trial.number}.toml",
            trial=trial.number,
        )
        _, scores = studies.train(path, test=True, echo=lambda _line: None)
        out.append({"trial": trial.number, "dev_loss": trial.value, **scores})
    return out


def summarize_trials(name: str, trials: list[dict[str, Any]], n_test: int) -> str:
    """One table row: the test scores of the saturated trials (dev loss below
    `SATURATED`) against those of the others, and what the study would pick among the others."""

    def share(group: list[dict[str, Any]]) -> str:
        if not group:
            return "0 | - | -"
        acc = statistics.median(t["test_accuracy"] for t in group)
        loss = statistics.median(t["test_loss"] for t in group)
        return f"{len(group)} | {100 * acc:.2f}% | {loss:.3f}"

    zero = sum(t["dev_loss"] == 0.0 for t in trials)
    saturated = [t for t in trials if t["dev_loss"] < SATURATED]
    rest = [t for t in trials if t["dev_loss"] >= SATURATED]
    top = max(t["test_accuracy"] for t in trials)
    picked = min(rest, key=lambda t: t["dev_loss"]) if rest else None
    picked_text = "-"
    if picked is not None:
        correct = round(picked["test_accuracy"] * n_test)
        picked_text = (
            f"trial {picked['trial']} (dev loss {picked['dev_loss']:.4f}): "
            f"{100 * picked['test_accuracy']:.2f}% ({correct}/{n_test})"
        )
    return (
        f"| `{name}` | {len(trials)} | {zero} | {share(saturated)} | {share(rest)} | "
        f"{100 * top:.2f}% | {picked_text} |"
    )


def print_trials_table(runs: list[dict[str, Any]], n_test: int) -> None:
    print(
        "| study | complete trials | dev loss exactly 0 | dev loss below "
        f"{SATURATED:g}: trials | their median test accuracy | their median test loss | "
        f"dev loss {SATURATED:g} or more: trials | their median test accuracy | their median "
        "test loss | best test accuracy of any trial | the trial with the lowest dev loss of "
        f"{SATURATED:g} or more |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for run in runs:
        print(summarize_trials(run["name"], run["trials"], n_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=300, help="epoch cap of each trial")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="study seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the worker")
    parser.add_argument("--work", type=Path, default=None, help="folder (default: a temp one)")
    parser.add_argument(
        "--all-trials",
        action="store_true",
        help="also train every complete trial of the standardize = true studies again and "
        "score it on the test rows",
    )
    args = parser.parse_args()

    folder = args.work or Path(tempfile.mkdtemp(prefix="hpstudy-wine-"))
    folder.mkdir(parents=True, exist_ok=True)
    bunch = load_wine()
    x, y = write_csv(folder / "wine.csv", bunch.data, bunch.target, bunch.feature_names, "class")
    rows = split_rows(
        len(y), test_fraction=TEST_FRACTION, dev_fraction=DEV_FRACTION, split_seed=SPLIT_SEED
    )
    n_test = len(rows.test)
    import trainer

    print(
        f"work folder {folder}; hpstudy from {Path(trainer.__file__).parent.parent}; "
        f"load average before: {load_average()}"
    )

    runs: list[dict[str, Any]] = []
    for seed in args.seeds:
        for standardize in (True, False):
            figures, path = search_and_test(
                spec(
                    folder,
                    seed=seed,
                    trials=args.trials,
                    epochs=args.epochs,
                    standardize=standardize,
                ),
                folder=folder,
                threads=args.threads,
            )
            identity = check_split(path, x, y, rows)
            print("\n".join(figures.pop("train_log")[-3:]))
            print(f"seed {seed}, standardize {standardize}: {figures}")
            print(f"data: {identity} (rows checked equal to the replicated split)")
            if args.all_trials and standardize:
                storage = f"sqlite:///{folder / 'hpstudy.db'}"
                figures["trials"] = test_every_trial(figures["name"], storage, folder)
            runs.append({"seed": seed, "standardize": standardize, **figures})
    load_after = load_average()
    baseline = logistic(x, y, rows)

    print()
    print(
        "| model | study seed | test accuracy | test loss | best dev loss (trial, diagnosis) | "
        "trials complete / pruned / failed | study wall (s) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for run in runs:
        label = "MLP, `standardize = " + ("true`" if run["standardize"] else "false`")
        correct = round(run["test_accuracy"] * n_test)
        print(
            f"| {label} | {run['seed']} | {100 * run['test_accuracy']:.2f}% ({correct}/{n_test})"
            f" | {run['test_loss']:.4f} | {run['best_value']:.4f} ({run['best_trial']}, "
            f"{', '.join(run['diagnosis']) or '-'}) | "
            f"{run['complete']} / {run['pruned']} / {run['failed']} | {run['wall_s']:.0f} |"
        )
    for label, fit in baseline.items():
        print(
            f"| standardised LogisticRegression, {label} (C = {fit['C']:g}) | - | "
            f"{100 * fit['accuracy']:.2f}% ({fit['correct']}/{n_test}) | - | - | - | - |"
        )
    print()
    reference = baseline["C = 1"]["accuracy"]
    for standardize in (True, False):
        accs = [r["test_accuracy"] for r in runs if r["standardize"] == standardize]
        med = statistics.median(accs)
        print(
            f"standardize = {str(standardize).lower()}: median test accuracy over "
            f"{len(accs)} studies {100 * med:.2f}%, {100 * (med - reference):+.2f} points against "
            f"the logistic regression (C = 1); per study "
            f"{', '.join(f'{100 * a:.2f}%' for a in accs)}"
        )
    tested = [run for run in runs if "trials" in run]
    if tested:
        print()
        print_trials_table(tested, n_test)
        (folder / "trials.json").write_text(
            json.dumps({run["name"]: run["trials"] for run in tested}, indent=1)
        )
    for run in runs:
        print(f"{run['name']} best params: {run['best_params']}")
    print(f"one test example = {100 / n_test:.2f} points; load average after: {load_after}")


if __name__ == "__main__":
    main()
