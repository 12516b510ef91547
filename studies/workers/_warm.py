"""Warm starts: configurations a user already knows, put at the head of a study's queue.

They come from the spec's `[study] enqueue = [...]` (tables of parameter values, possibly
partial) and from `hpstudy run --warm-start SOURCE`, where a source is an exported config file
(`best.toml`, `.json`, `.yaml`) or a study in any storage (`NAME@URL`, its best trials). Each
point is checked against the study's space, every problem reported with where it came from,
and enqueued once per study (`enqueue_once`) however often the study is resumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

from search_space import SpaceError, encode_point
from studies._errors import ParameterError, StudyError
from studies.spec import ENV_PREFIX, StudySpec
from studies.storage import (
    TrialAttrs,
    create_engine,
    enqueue_once,
    finished_trials,
    load_study,
    open_storage,
    redact,
    require_database,
    resolve_storage,
)
from trainer import ConfigError, read_config_file

TOP_TRIALS = 3  # best trials taken from a study given as a warm start

Point = tuple[dict[str, Any], str]  # (values encoded for Optuna, where they came from)


def warm_start_points(spec: StudySpec, sources: Sequence[str] = ()) -> list[Point]:
    """The spec's `enqueue` points, then each source's, checked against the space.

    Raises:
        StudyError: listing every point that names an unknown parameter, a value outside
            the space or of another type; a `ParameterError` when a source (`warm_start`)
            cannot be read.
    """
    base = spec.train.to_dict()
    points: list[Point] = []
    problems: list[str] = []
    unread = False  # a source of `warm_start` could not be read: its message names it
    raw: list[tuple[dict[str, Any], str, bool]] = [
        (dict(point), f"{spec.source}: study.enqueue[{i}]", True)
        for i, point in enumerate(spec.enqueue)
    ]
    for source in sources:
        try:
            raw += _read_source(source)
        except StudyError as exc:
            problems.append(str(exc))
            unread = unread or isinstance(exc, ParameterError)
    for values, source, partial in raw:
        try:
            points.append((encode_point(spec.space, values, base=base, partial=partial), source))
        except SpaceError as exc:
            problems += [f"{source}: {problem}" for problem in exc.problems]
    if problems:
        error = ParameterError if unread else StudyError
        raise error(f"cannot warm-start study '{spec.name}':\n  - " + "\n  - ".join(problems))
    return [(values, source) for values, source in points if values]


def _read_source(source: str) -> list[tuple[dict[str, Any], str, bool]]:
    """Points from an exported config file or from `NAME@URL` (a study's best trials)."""
    name, at, url = source.partition("@")
    if at and ("://" in url or url.startswith(ENV_PREFIX)):
        return _from_study(name, url)
    path = Path(source)
    if not path.is_file():
        raise ParameterError(
            f"`warm_start={source}`: neither a config file (e.g. best.toml from an export) "
            f"nor a study given as NAME@URL (e.g. mnist-mlp@sqlite:///hpstudy.db)"
        )
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        raise ParameterError(f"`warm_start={source}`: {exc}") from None
    return [(dict(data.get("train", data)), str(path), False)]


def _from_study(name: str, given: str) -> list[tuple[dict[str, Any], str, bool]]:
    url = resolve_storage(given)  # NAME@env:VAR keeps a password off the command line
    require_database(url)
    study = load_study(open_storage(url), name, url=url)
    best = finished_trials(study)[:TOP_TRIALS]
    if not best:
        raise ParameterError(
            f"`warm_start={name}@{redact(given)}`: the study has no complete trial"
        )
    return [_trial_point(trial, name) for trial in best]


def _trial_point(trial: optuna.trial.FrozenTrial, name: str) -> tuple[dict[str, Any], str, bool]:
    config = TrialAttrs.of(trial).config
    source = f"study {name}, trial {trial.number}"
    if config is not None:  # hpstudy's trial: its whole config, as an export holds it
        return (dict(config), source, False)
    return (dict(trial.params), source, True)


def enqueue_points(
    study: optuna.Study, study_id: int, url: str, points: Sequence[Point]
) -> list[str]:
    """Enqueues each point once per study; returns the sources that were enqueued now."""
    if not points:
        return []
    engine = create_engine(url)
    try:
        return [
            source
            for values, source in points
            if enqueue_once(study, engine, study_id, values, source=source)
        ]
    finally:
        engine.dispose()
