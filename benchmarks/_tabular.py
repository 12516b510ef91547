"""Shared by the tabular benchmarks (regression_vs_ridge.py, wine_standardize.py).

- `split_rows`: hpstudy's held-out test rows and train/dev rows, computed here the way
  `trainer/_data.py` computes them (`_hold_out_test`: a permutation seeded with 1234 for
  `test_fraction`; `_split`: a `split_seed` permutation of the rest for `dev_fraction`), so
  scikit-learn can be fitted and scored on the same rows;
- `write_csv`: a data set as the CSV file hpstudy reads;
- `check_split`: asserts that the tensors hpstudy trains and tests an exported file on are
  exactly those rows, in the same order;
- `search_and_test`: `studies.run`, `studies.export` and `studies.train(..., test=True)`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from studies.storage import Provenance

TEST_SEED = 1234  # trainer/_data.py TEST_SEED: test_fraction's fixed seed

# The search space of the small-table benchmarks (wine_standardize.py, cv_tabular.py): layer
# sizes, lr, weight decay, dropout, optimiser and (for sgd/rmsprop) momentum.
TABULAR_SPACE: dict[str, Any] = {
    "hidden": {"choices": [[16], [32], [64], [32, 16], [64, 32]]},
    "lr": {"low": 1e-4, "high": 1e-1, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "optimizer": {"choices": ["sgd", "adam", "rmsprop"]},
    "momentum": {"low": 0.0, "high": 0.95, "when": {"optimizer": ["sgd", "rmsprop"]}},
}


@dataclasses.dataclass(frozen=True)
class Split:
    """Row numbers of the data file: test (sorted), train and dev (hpstudy's order)."""

    test: np.ndarray
    train: np.ndarray
    dev: np.ndarray

    @property
    def pool(self) -> np.ndarray:
        """Every row not held out as test: train and dev together, sorted."""
        return np.sort(np.concatenate([self.train, self.dev]))


def split_rows(n: int, *, test_fraction: float, dev_fraction: float, split_seed: int) -> Split:
    """The rows hpstudy uses for a file of `n` examples (as in trainer/_data.py)."""
    order = np.random.default_rng(TEST_SEED).permutation(n)
    n_test = max(1, round(n * test_fraction))
    test, pool = np.sort(order[:n_test]), np.sort(order[n_test:])
    shuffled = pool[np.random.default_rng(split_seed).permutation(len(pool))]
    n_dev = max(1, round(len(pool) * dev_fraction))
    return Split(test=test, train=shuffled[n_dev:], dev=shuffled[:n_dev])


def write_csv(
    path: Path, x: np.ndarray, y: np.ndarray, features: Sequence[str], target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Writes a header and one row per example (features, then the target); returns the
    features and targets read back from the text, as the trainer reads them (float64)."""
    rows = np.column_stack([x, y]).astype(np.float64)
    lines = [",".join(repr(float(v)) for v in row) for row in rows]
    path.write_text("\n".join([",".join([*features, target]), *lines]) + "\n")
    back = np.loadtxt(path, delimiter=",", skiprows=1)
    assert np.array_equal(back, rows), "the CSV does not round-trip"
    return back[:, :-1], back[:, -1]


def _standardized(stats: Mapping[str, Any], x: np.ndarray, prefix: str = "x") -> np.ndarray:
    """`x` standardised with hpstudy's stored statistics, with the trainer's arithmetic."""
    x = x.astype(np.float32)
    if not stats["per_feature"]:
        return (x - stats[f"{prefix}_mean"]) / stats[f"{prefix}_std"]
    mean = np.asarray(stats[f"{prefix}_mean"], dtype=np.float64)
    std = np.asarray(stats[f"{prefix}_std"], dtype=np.float64)
    return ((x - mean) / std).astype(np.float32)


def check_split(path: Path, x: np.ndarray, y: np.ndarray, split: Split) -> dict[str, Any]:
    """Asserts that the data `studies.train(path, test=True)` uses is `x`, `y` cut by `split`.

    Loads the exported file's data as `hpstudy train` does (its `[standardization]` statistics
    and search path) and compares every split with the rows of `split`, standardised with the
    same statistics: equal arrays, in the same order.

    Returns:
        The data identity (fingerprint, split sizes) hpstudy records.
    """
    from trainer import TrainConfig, load_data, read_config_file

    exported = read_config_file(path)
    config = TrainConfig.load(path)
    stats = exported["standardization"]
    data = load_data(
        config,
        with_test=True,
        standardization=stats,
        search_path=[str(path.parent), Provenance.from_dict(exported["provenance"]).folder or ""],
        device="cpu",
    )
    assert data.x_test is not None and data.y_test is not None
    regression = config.task == "regression"
    pairs = {
        "train": (data.x_train, data.y_train, split.train),
        "dev": (data.x_dev, data.y_dev, split.dev),
        "test": (data.x_test, data.y_test, split.test),
    }
    for name, (xs, ys, rows) in pairs.items():
        want_x = _standardized(stats, x[rows])
        if regression:
            want_y = _standardized(stats, y[rows].reshape(len(rows), -1), "y")
        else:
            want_y = y[rows].astype(np.int64)
        assert np.array_equal(xs.numpy(), want_x), f"{name} inputs differ from rows {rows[:5]}..."
        assert np.array_equal(ys.numpy(), want_y), f"{name} targets differ"
    return dict(data.identity)


def search_and_test(
    spec: dict[str, Any], *, folder: Path, threads: int
) -> tuple[dict[str, Any], Path]:
    """Runs the study (1 worker of `threads` torch threads), exports its best trial and
    trains that file again with its test split.

    Returns:
        Figures of the study (wall seconds, trial counts, best value and parameters) and of
        the retrained best (test scores, its own dev metric), and the exported file.
    """
    import studies
    from studies.results import best_trial

    os.environ["HPSTUDY_THREADS"] = str(threads)
    name, storage = spec["study"]["name"], spec["study"]["storage"]
    tic = time.perf_counter()
    study = studies.run(spec, workers=1, progress=False)
    wall = time.perf_counter() - tic
    states = [t.state for t in study.trials]
    path = studies.export(name, storage=storage, output=folder / f"{name}-best.toml")
    lines: list[str] = []
    tic = time.perf_counter()
    result, scores = studies.train(path, test=True, echo=lines.append)
    best = result.best
    assert best is not None
    from trainer import read_config_file

    diagnosis = list(Provenance.from_dict(read_config_file(path)["provenance"]).diagnosis)
    chosen = best_trial(study)
    figures = {
        "name": name,
        "wall_s": wall,
        "complete": states.count(optuna.trial.TrialState.COMPLETE),
        "pruned": states.count(optuna.trial.TrialState.PRUNED),
        "failed": states.count(optuna.trial.TrialState.FAIL),
        # hpstudy's best (what export wrote): ties go against trials diagnosed diverged,
        # where Optuna's `study.best_trial` takes the first of them
        "best_trial": chosen.number,
        "best_value": chosen.value,
        "best_params": chosen.params,
        "diagnosis": list(diagnosis),
        "retrain_s": time.perf_counter() - tic,
        "retrain_epochs": len(result.epochs),
        "retrain_best_epoch": best.epoch,
        "retrain_dev": best.metric(spec["study"]["metric"]),
        "train_log": lines,
        **scores,
    }
    return figures, path


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
