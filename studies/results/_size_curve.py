"""`hpstudy learning-curve`: a trial's config trained on growing shares of its training split.

For each share and repeat, a seeded subset of the training split (the subsets of one repeat
are nested: each holds the smaller ones) trains the trial's config with the repeat's seed; the
dev split stays the one every trial used. The train error is measured on the subset the run
trained on (in eval mode, no dropout), the dev error on the dev split. The curves, their
reading and the picture are kept with the study (user attribute and study artifact) and
appear in `hpstudy report`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from studies._errors import ParameterError
from studies.analysis import SizePoint, chance_error, plot_size_curve, read_size_curve
from studies.results._pick import best_trial
from studies.results._read import open_study, trial_config
from studies.spec import LearningCurve
from studies.storage import (
    DatabaseArtifactStore,
    TrialAttrs,
    create_engine,
    write_study_attrs,
)

SIZES = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
REPEATS = 3


def check_sizes(sizes: Sequence[float], repeats: int) -> tuple[float, ...]:
    """Sizes sorted, each a share in (0, 1].

    Raises:
        ParameterError: for a size outside (0, 1], fewer than two sizes, or repeats < 1.
    """
    bad = [s for s in sizes if not (0 < s <= 1)]
    if bad:
        raise ParameterError(
            f"`sizes` are shares of the training split in (0, 1], e.g. 0.1,0.5,1.0; got "
            f"{', '.join(f'{s:g}' for s in bad)}"
        )
    if len(set(sizes)) < 2:
        raise ParameterError("`sizes` needs at least two different shares to draw a curve")
    if repeats < 1:
        raise ParameterError(f"`repeats` must be at least 1, got {repeats}")
    return tuple(sorted(set(sizes)))


def size_curve(
    config: Any,
    data: Any,
    *,
    sizes: Sequence[float],
    repeats: int,
    search_path: Sequence[str] = (),
    echo: Callable[[str], None] = print,
) -> list[SizePoint]:
    """Trains `config` on each share of `data`'s training split, `repeats` seeds each."""
    from trainer import evaluate, fit

    n = len(data.y_train)
    orders = [np.random.default_rng(1_000 + r).permutation(n) for r in range(repeats)]
    points = []
    for share in sizes:
        examples = max(config.batch_size, round(share * n)) if share < 1 else n
        train, dev = [], []
        for repeat, order in enumerate(orders):
            rows = torch_index(order[: min(examples, n)], data.x_train.device)
            subset = dataclasses.replace(
                data, x_train=data.x_train[rows], y_train=data.y_train[rows]
            )
            result = fit(config.replace(seed=config.seed + repeat), subset, search_path=search_path)
            train.append(
                _error(
                    evaluate(result.model, subset.x_train, subset.y_train, task=config.task),
                    config.task,
                )
            )
            dev.append(
                _error(
                    evaluate(result.model, data.x_dev, data.y_dev, task=config.task), config.task
                )
            )
        point = SizePoint(share, min(examples, n), tuple(train), tuple(dev))
        echo(
            f"{point.examples:>7} examples ({share:.0%}): train error {point.train_mean:.4f}, "
            f"dev error {point.dev_mean:.4f} (over {repeats} seed(s))"
        )
        points.append(point)
    return points


def torch_index(rows: np.ndarray, device: Any) -> Any:
    import torch

    return torch.from_numpy(np.sort(rows)).to(device)


def _error(scores: Any, task: str) -> float:
    return float(scores.loss) if task == "regression" else 1.0 - float(scores.accuracy)


def learning_curve(
    name: str,
    *,
    url: str | None = None,
    number: int | None = None,
    sizes: Sequence[float] = SIZES,
    repeats: int = REPEATS,
    output: str | Path | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[str, str]:
    """The learning curves of study `name`'s best trial (or trial `number`) over the size.

    Returns:
        (label, sentence): underfitting, overfitting or good_fit, and what it means.

    Raises:
        StudyError: for bad sizes or repeats, or an unknown study or trial.
    """
    from trainer import load_data

    shares = check_sizes(sizes, repeats)
    opened = open_study(name, url)
    trial = best_trial(opened.study, number)
    # A k-fold trial's config: its one network on the dev split dev_fraction holds out
    config = trial_config(trial).replace(folds=1, repeats=1)
    search_path = opened.search_path(trial)
    stats = TrialAttrs.of(trial).standardization
    data = load_data(config, standardization=stats, search_path=search_path)
    echo(
        f"trial {trial.number} of '{name}' on {len(shares)} shares of its "
        f"{len(data.y_train)} training examples, {repeats} seed(s) each; dev set fixed"
    )
    points = size_curve(
        config, data, sizes=shares, repeats=repeats, search_path=search_path, echo=echo
    )
    chance = chance_error(data.identity)
    label, numbers, sentence = read_size_curve(points, chance_error=chance)
    error = "MSE" if config.task == "regression" else "error (1 - accuracy)"
    png = plot_size_curve(points, title=f"trial {trial.number}: {label}", error=error)
    if output is not None:
        Path(output).write_bytes(png)
    _keep(opened, trial, points, label, numbers, sentence, png)
    echo(sentence)
    return label, sentence


def _keep(
    opened: Any,
    trial: optuna.trial.FrozenTrial,
    points: list[SizePoint],
    label: str,
    numbers: dict[str, float],
    sentence: str,
    png: bytes,
) -> None:
    """The curve as a study attribute (for the report) and its picture as a study artifact."""
    curve = LearningCurve(trial.number, tuple(points), label, numbers, sentence)
    write_study_attrs(opened.study, learning_curve=curve)
    engine = create_engine(opened.url)
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"learning-curve-size-trial-{trial.number}.png"
            path.write_bytes(png)
            optuna.artifacts.upload_artifact(
                artifact_store=DatabaseArtifactStore(engine),
                file_path=str(path),
                study_or_trial=opened.study,
            )
    finally:
        engine.dispose()
