"""The user's code and data, checked before a study starts: one clear error, and no study.

A user's model factory or data loader is an input like any other. Before anything long
starts, `preflight` imports them, reads and checks the data (NaN, non-numeric columns, labels)
and runs one batch through a model built from one sample of the space, so that a typo in a
module name or a network whose output does not fit the task fails at once, naming the spec
file and the key, instead of failing every trial.
"""

from __future__ import annotations

from typing import Any

import optuna

from search_space import nest, suggest
from studies._errors import StudyError
from studies.spec import REPEAT, SpecError, StudySpec, quiet_optuna
from studies.storage import local_transfer
from trainer import (
    BUILTIN_DATASETS,
    ConfigError,
    DataUnavailableError,
    TrainConfig,
    UserCodeError,
    WeightsError,
    load_factory,
    load_loader,
    parse_reference,
)

Code = dict[str, dict[str, str]]  # role ("model", "loader") -> {"ref", "source", "sha256"}


def user_code(spec: StudySpec) -> Code:
    """The identities of the spec's model factory and data loader (none for built-ins).

    Raises:
        SpecError: for a factory or loader that cannot be imported here.
    """
    train, where = spec.train, spec.search_path
    code: Code = {}
    try:
        if parse_reference(train.model) is not None:
            code["model"] = load_factory(train.model, search_path=where).identity()
    except UserCodeError as exc:
        raise SpecError([f"train.model: {exc}"], source=spec.source) from None
    try:
        if parse_reference(train.dataset) is not None:
            code["loader"] = load_loader(train.dataset, search_path=where).identity()
    except UserCodeError as exc:
        raise SpecError([f"train.dataset: {exc}"], source=spec.source) from None
    return code


def preflight(spec: StudySpec) -> Code:
    """Checks the user's code and data; returns the code's identities to keep with the study.

    A built-in model on a built-in data set needs no check (and no torch): it returns {};
    with `labels` the data is loaded, to check that many rows can keep their labels.

    Raises:
        SpecError: naming the spec file and `train.model` or `train.dataset`.
    """
    train = spec.train
    transfer = bool(train.init_from or train.freeze)
    # `labels` must fit the data's classes and rows: checked on the data, built in or not
    plain = not transfer and not train.labels
    if parse_reference(train.model) is None and train.dataset in BUILTIN_DATASETS and plain:
        return {}
    code = user_code(spec)
    from trainer import check_model, load_data  # torch: only for the user's code or data

    config = one_sample(spec)
    try:
        data = load_data(config, device="cpu", search_path=spec.search_path)
    except (UserCodeError, DataUnavailableError, ConfigError) as exc:
        raise SpecError([f"train.dataset: {exc}"], source=spec.source) from None
    if config.folds > 1:  # a class with fewer rows than folds would fail every trial
        from trainer import fold_indices

        try:
            fold_indices(
                data.y_train.numpy(), config.folds, task=config.task, seed=config.split_seed
            )
        except ConfigError as exc:
            problems = [f"train.folds: {p}" for p in exc.problems]
            raise SpecError(problems, source=spec.source) from None
    try:
        check_model(config.replace(device="cpu"), data, search_path=spec.search_path)
    except (UserCodeError, ConfigError, ValueError) as exc:
        raise SpecError([f"train.model: {exc}"], source=spec.source) from None
    if transfer:
        _check_transfer(spec, config.replace(device="cpu"), data)
    return code


def _check_transfer(spec: StudySpec, config: TrainConfig, data: Any) -> None:
    """`init_from` fetched and loaded, `freeze` applied, on a network built once."""
    from trainer import apply_transfer, build_model

    try:
        trained, _ = local_transfer(config)
        model = build_model(
            trained, data.input_shape, data.num_classes, search_path=spec.search_path
        )
        apply_transfer(model, trained, search_path=spec.search_path)
    except (StudyError, WeightsError, ConfigError) as exc:
        key = "train.init_from" if isinstance(exc, (StudyError, WeightsError)) else "train.freeze"
        problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        raise SpecError([f"{key}: {p}" for p in problems], source=spec.source) from None


def one_sample(spec: StudySpec) -> TrainConfig:
    """The base config with one random sample of the space: what a first trial would train."""
    with quiet_optuna():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    base = spec.train.to_dict()
    params = nest(suggest(trial, spec.space, base=base), base=base)
    params.pop(REPEAT, None)  # an ablation's seed index, not a config field
    return spec.train.replace(**params)
