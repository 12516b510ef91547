"""`hpstudy export`: a trial's complete `TrainConfig` plus provenance, as a file to run again.

The file holds `[train]`, every field of the config the trial trained (not just the sampled
ones, and with the trial's seed), `[provenance]`: where it came from (study, trial, value,
seed, data set identity, a user model factory's file and content hash, package versions,
date), and `[standardization]`: the training split's feature statistics, which `hpstudy
train` applies again. A trial of several networks (k folds, repeats) exports one of two ways
(`REFITS`, chosen by `refit`): `"ensemble"` keeps its `[train]` as it ran, so `hpstudy train`
trains the same k networks again and scores the mean of their predictions (`Ensemble`), and
`--weights` writes the kept ensemble; `"retrain"` exports the one network that retrains it on
the whole training split (`refit_config`). Its networks' values are in `[provenance.folds]`.
`TrainConfig.load` reads `[train]` only, so `hpstudy train FILE [--test]` runs the file as it
is, without the database.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import platform
from pathlib import Path
from typing import Any

import optuna

from studies._errors import ParameterError, StudyError
from studies.results._files import check_output
from studies.results._pick import best_trial, front_choice, picked_trial
from studies.results._read import OpenStudy, open_study, trial_config
from studies.storage import (
    Provenance,
    StudyAttrs,
    TrialAttrs,
    WeightStore,
    create_engine,
    public_url,
    selection_maximized,
)
from trainer import DataUnavailableError, TrainConfig, load_data

SUFFIXES = (".toml", ".json", ".yaml", ".yml")
WEIGHT_SUFFIXES = (".pt", ".pth")
PACKAGES = ("hpstudy", "torch", "optuna", "numpy")  # versions recorded, besides Python's
# How a trial of several networks is exported: the ensemble of its networks, or one network
# retrained on the whole training split. The default was chosen by measurement
# (benchmarks/cv_tabular.py, RESULTS.md, issue 29).
REFITS = ("ensemble", "retrain")
DEFAULT_REFIT = "ensemble"


def versions() -> dict[str, str]:
    """The versions of Python and the packages that decide what a run computes."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def data_identity(trial: optuna.trial.FrozenTrial, config: TrainConfig) -> dict[str, Any]:
    """The data set the trial trained on: name, content fingerprint and split sizes.

    Read from the trial when the worker stored it, else computed from the data here.
    """
    stored = TrialAttrs.of(trial).data
    if stored:
        return dict(stored)
    try:
        return dict(load_data(config, device="cpu").identity)
    except DataUnavailableError as exc:
        return {"dataset": config.dataset, "fingerprint": f"unknown ({exc})"}


def _spec_folder(study: optuna.Study) -> str | None:
    spec = StudyAttrs.of(study).spec
    return (spec.folder or None) if spec else None


def provenance(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, config: TrainConfig, *, url: str = ""
) -> Provenance:
    """Where an exported config came from: enough to trace it back and to trust a rerun."""
    attrs = TrialAttrs.of(trial)
    names = list(study.metric_names or ["value"])
    values = list(trial.values or [])
    return Provenance(
        study=study.study_name,
        trial=trial.number,
        state=trial.state.name.lower(),
        metric=names[0],
        direction=study.directions[0].name.lower(),
        value=values[0] if values else None,
        objectives=dict(zip(names, values, strict=False)) if values else None,
        measured=attrs.measured,
        seed=config.seed,
        torch_threads=attrs.torch_threads,
        best_epoch=attrs.best_epoch,
        epochs_run=attrs.epochs_run,
        stop_reason=None if attrs.stop_reason is None else str(attrs.stop_reason),  # plain
        diagnosis=attrs.diagnosis,
        storage=public_url(url) if url else None,
        exported=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        versions=versions(),
        data=data_identity(trial, config),
        model=attrs.model,
        transfer=attrs.transfer,
        prior=attrs.prior,
        folder=_spec_folder(study),
    )


def refit_config(config: TrainConfig, folds: dict[str, Any]) -> TrainConfig:
    """The config that retrains a trial of several networks (folds, repeats) as one.

    One network on the whole training split (`dev_fraction = 0`: the k-fold trial's train and
    dev rows together; the test split as ever untouched) for the epochs its networks chose,
    `refit_epochs` (the median of their best epoch + 1, times the whole split's rows over a
    fold's training rows since issue 29), with no early stopping: nothing is held out to stop
    on. The seed is the trial's (its first repeat's).
    """
    return config.replace(
        folds=1, repeats=1, dev_fraction=0.0, patience=0, epochs=int(folds["refit_epochs"])
    )


def export_trial(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    path: str | Path,
    *,
    url: str = "",
    weights: str | Path | None = None,
    blob: bytes | None = None,
    refit: str = DEFAULT_REFIT,
) -> Provenance:
    """Writes the trial's config and provenance to `path` (.toml, .json or .yaml).

    Args:
        refit: a trial of several networks: "ensemble" or "retrain" (see the module's
            docstring); a trial of one network ignores it.

    Returns:
        The provenance written.

    Raises:
        StudyError: for an unfinished trial, a bad suffix, a path that cannot be written, an
            unknown `refit`, or weights asked of a retrained export.
    """
    check_refit(refit)
    path = check_output(path, SUFFIXES)
    config = trial_config(trial)
    attrs = TrialAttrs.of(trial)
    folds = attrs.folds
    several = config.folds * config.repeats > 1
    if folds is None and several:
        # pruned before its networks' values were stored: the merged curve's best epoch
        best = attrs.best_epoch if attrs.best_epoch is not None else config.epochs - 1
        folds = {"folds": config.folds, "repeats": config.repeats, "refit_epochs": best + 1}
    if several and refit == "retrain":
        if weights is not None:
            raise ParameterError(
                f"trial {trial.number} trained {config.folds * config.repeats} networks: its "
                f"kept weights are their ensemble, which a retrained export (refit = "
                f"'retrain') does not use; export with refit='ensemble' (--refit ensemble) "
                f"to write them"
            )
        config = refit_config(config, folds or {})
    about = provenance(study, trial, config, url=url)
    if folds:  # what the exported run no longer shows: the networks the trial averaged
        folds = {k: v for k, v in folds.items() if k != "curves"}  # they stay in the study
        about = dataclasses.replace(
            about,
            folds={
                **folds,
                # TOML has no null: -1 marks a network without a finite epoch (it diverged)
                "best_epochs": [-1 if e is None else e for e in folds.get("best_epochs", [])],
                **({"export": refit} if several else {}),
            },
        )
    if weights is not None and blob is not None:
        try:
            Path(weights).write_bytes(blob)
        except OSError as exc:
            raise StudyError(f"cannot write '{weights}': {exc.strerror or exc}") from None
        written = {"file": str(weights), "sha256": hashlib.sha256(blob).hexdigest()}
        about = dataclasses.replace(about, weights=written)
    extra: dict[str, Any] = {"provenance": about.to_dict()}
    stats = attrs.standardization
    if stats:  # the training split's feature statistics: train and reproduce apply them
        extra["standardization"] = stats
    try:
        config.save(path, extra=extra)
    except OSError as exc:
        raise StudyError(
            f"cannot write '{path}': {exc.strerror or exc}; choose a path you can write to"
        ) from None
    return about


def check_refit(refit: str) -> None:
    """Raises a `ParameterError` naming `refit` and its choices for an unknown one."""
    if refit not in REFITS:
        raise ParameterError(
            f"refit must be one of {', '.join(repr(r) for r in REFITS)}, got {refit!r}"
        )


def export_best(
    name: str,
    *,
    url: str | None = None,
    output: str | Path = "best.toml",
    number: int | None = None,
    weights: str | Path | None = None,
    pick: str | None = None,
    refit: str = DEFAULT_REFIT,
) -> tuple[Path, Provenance]:
    """Exports the best complete trial of study `name`, or its trial `number`, or the trial
    `pick` chooses (`picked_trial`).

    A study of several objectives has no best trial: without `number` or `pick` it raises a
    `StudyError` that lists its Pareto front.

    Args:
        pick: a condition such as "params<=50000": the best first objective among the
            front's trials that meet it.
        weights: also write the trial's kept best-epoch weights (a state dict) to this file,
            and name it in the provenance (a trial of several networks: their ensemble).
        refit: a trial of several networks: "ensemble" (the default) or "retrain".

    Returns:
        The file written and its provenance.

    Raises:
        StudyError: for an unknown study or trial, a study with no finished trial, an output
            path that cannot be written, or a trial whose weights were not kept.
    """
    check_refit(refit)
    check_output(output, SUFFIXES)
    if weights is not None:
        check_output(weights, WEIGHT_SUFFIXES)
    if number is not None and pick is not None:
        raise ParameterError("choose the trial with `trial` or with `pick`, not both")
    opened = open_study(name, url)
    if pick is not None:
        trial = picked_trial(opened.study, pick)
    elif number is None and len(opened.study.directions) > 1:
        raise ParameterError(front_choice(opened.study, pick=True))
    else:
        trial = best_trial(opened.study, number)
    several = trial_config(trial).folds * trial_config(trial).repeats > 1
    retrained = several and refit == "retrain"
    blob = None if weights is None or retrained else kept_weights(opened, trial.number)
    about = export_trial(
        opened.study, trial, output, url=opened.url, weights=weights, blob=blob, refit=refit
    )
    return Path(output), about


def kept_weights(opened: OpenStudy, number: int) -> bytes:
    """A trial's kept weights.

    Raises:
        StudyError: when they were not kept, naming the trials whose weights were.
    """
    engine = create_engine(opened.url)
    try:
        study_id = opened.storage.get_study_id_from_name(opened.study.study_name)
        maximize = selection_maximized(opened.study)
        store = WeightStore(engine, opened.storage, study_id, maximize=maximize)
        blob = store.read(number)
        kept = [trial for trial, _ in store.kept()]
    finally:
        engine.dispose()
    if blob is None:
        raise ParameterError(
            f"trial {number} has no kept weights: a study keeps the best-epoch weights of its "
            f"best complete trials (study.keep_weights); kept now: "
            f"{', '.join(map(str, kept)) or 'none'}. Export one of those with `trial=N`, or "
            f"train this trial's config again with hpstudy train"
        )
    return blob
