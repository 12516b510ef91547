"""The PyTorch trainer: one frozen `TrainConfig` in, a fitted model and its epochs out.

This package knows nothing of Optuna; the `studies` package drives it through `fit`'s
`on_epoch` callback.

Example:
    >>> from trainer import TrainConfig, fit
    >>> result = fit(TrainConfig(dataset="digits", epochs=3), on_epoch=print)  # doctest: +SKIP
"""

from __future__ import annotations

from trainer._config import (
    ConfigError,
    TrainConfig,
    field_names,
    read_config_file,
    write_config_file,
)
from trainer._data import DATASETS, Arrays, Data, load_data, read_arrays, resolve_device
from trainer._fit import (
    CheckpointStore,
    EpochResult,
    FileCheckpoint,
    FitResult,
    evaluate,
    fit,
    train_epoch,
    weight_layers,
)
from trainer._init import INIT_SCHEMES, fans, initialize
from trainer._mnist import DataUnavailableError, fetch_mnist, has_mnist
from trainer._models import ACTIVATIONS, build_model
from trainer._optim import OPTIMIZERS, SCHEDULES, elastic_net, make_optimizer, make_schedule

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "INIT_SCHEMES",
    "OPTIMIZERS",
    "SCHEDULES",
    "Arrays",
    "CheckpointStore",
    "ConfigError",
    "Data",
    "DataUnavailableError",
    "EpochResult",
    "FileCheckpoint",
    "FitResult",
    "TrainConfig",
    "build_model",
    "elastic_net",
    "evaluate",
    "fans",
    "fetch_mnist",
    "field_names",
    "fit",
    "has_mnist",
    "initialize",
    "load_data",
    "make_optimizer",
    "make_schedule",
    "read_arrays",
    "read_config_file",
    "resolve_device",
    "train_epoch",
    "weight_layers",
    "write_config_file",
]
