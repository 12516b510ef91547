"""`TrainConfig`: every choice of one training run, validated, and read from / written to files."""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainer._args import RESERVED_ARGS, ModelArgs
from trainer._errors import ConfigError
from trainer._refs import parse_reference

# Names the registries hold. They live here (not next to the torch code) so that a config can be
# validated, and its vocabulary read, without building anything; a test checks that each list
# equals the keys of its registry.
MODELS = ("mlp", "cnn")
ACTIVATION_NAMES = ("relu", "leaky_relu", "elu", "selu", "tanh", "sigmoid")
INIT_NAMES = (
    "default",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
)
OPTIMIZER_NAMES = ("sgd", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULE_NAMES = ("constant", "piecewise", "step", "exponential", "reduce_on_plateau", "cosine")
TASKS = ("classification", "regression")
# The dev metrics each task reports; the monitor (early stopping, model selection) is one.
TASK_METRICS = {
    "classification": ("dev_loss", "dev_accuracy"),
    "regression": ("dev_loss", "dev_rmse", "dev_r2"),
}
MONITORS = ("dev_loss", "dev_accuracy", "dev_rmse", "dev_r2")
MAXIMIZED = ("dev_accuracy", "dev_r2")  # larger is better; the other metrics are minimised
BUILTIN_DATASETS = ("mnist", "digits")
WEIGHTS_SUFFIXES = (".pt", ".pth")  # what `init_from` may name


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run, complete: the same config and seed give the same run on a CPU."""

    # --- data ---
    # "mnist", "digits", an .npz file, a .csv file, an image folder, or a loader function
    # ("package.module:load" or "path/to/loaders.py:load")
    dataset: str = "mnist"
    data_dir: str = "data"  # where downloaded data sets are kept
    task: str = "classification"  # or "regression" (mean squared error on float targets)
    target: tuple[str, ...] = ()  # CSV only: the label column(s); a string or a list of them
    test_fraction: float = 0.0  # data without a test split: share held out (fixed seed) as test
    standardize: bool = False  # per-feature (and regression target) standardisation
    # share of the training set held out as the dev set; 0 = none: every example trains and
    # the last epoch is kept (how an export of a k-fold trial retrains; needs patience = 0)
    dev_fraction: float = 0.1
    split_seed: int = 0  # seeds the train/dev split; fixed across trials so all see one dev set
    train_size: int = 0  # use only this many training examples (0 = all); small = fast/overfit
    # keep labels on only this many training rows (stratified; 0 = all): the other training
    # rows lose their labels and join the data's unlabelled rows (`x_unlabeled`), which only
    # pre-training uses; for few-label experiments
    labels: int = 0
    # --- model ---
    model: str = "mlp"  # "mlp", "cnn", or a factory: "package.module:build", "models.py:build"
    model_args: Mapping[str, Any] = ModelArgs()  # factory keyword arguments (frozen, hashable)
    hidden: tuple[int, ...] = (300, 100)  # MLP hidden layer widths; the CNN's dense head
    channels: tuple[int, ...] = (32, 64)  # CNN: output channels of each conv block (3x3, 2x2 pool)
    activation: str = "relu"  # hidden-layer nonlinearity
    batch_norm: bool = False  # batch norm after each hidden linear / conv layer
    dropout: float = 0.0  # drop probability after each hidden activation, in [0, 1)
    init: str = "default"  # weight-init scheme; "default" keeps torch's own
    # --- transfer learning ---
    # a state-dict file (.pt/.pth, as `torch.save(model.state_dict(), path)` writes it): its
    # entries whose name and shape match start the network, the others keep `init`; "" = none
    init_from: str = ""
    freeze: int = 0  # weight layers, from the input side, held fixed (with biases and norms)
    # --- unsupervised pre-training (greedy, layer by layer, as denoising autoencoders) ---
    pretrain_epochs: int = 0  # epochs per hidden layer on unlabelled + training inputs; 0 = off
    pretrain_noise: float = 0.2  # masking noise: share of each layer's inputs set to 0, [0, 1)
    # --- optimiser ---
    optimizer: str = "sgd"  # sgd (with momentum / nesterov), adagrad, rmsprop, adam, adamw
    lr: float = 0.01  # initial learning rate
    momentum: float = 0.0  # sgd and rmsprop only
    nesterov: bool = False  # sgd only; needs momentum > 0
    weight_decay: float = 0.0  # L2 through the optimiser (decoupled for adamw)
    l1: float = 0.0  # strength of the elastic-net penalty added to the loss (weights only)
    l1_ratio: float = 1.0  # elastic-net mix: 1 = pure L1 (lasso), 0 = pure L2 (ridge)
    clip_value: float = 0.0  # clip each gradient element to [-v, v]; 0 = off
    clip_norm: float = 0.0  # rescale the whole gradient to at most this L2 norm; 0 = off
    # --- learning-rate schedule (stepped once per epoch) ---
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()  # piecewise: epochs at which lr is multiplied by gamma
    step_size: int = 10  # step: epochs between multiplications by gamma
    gamma: float = 0.1  # step / piecewise / exponential: the per-decay lr factor
    plateau_factor: float = 0.1  # reduce_on_plateau: lr factor when dev loss stalls
    plateau_patience: int = 2  # reduce_on_plateau: epochs without improvement before a cut
    min_lr: float = 0.0  # cosine: the final lr; reduce_on_plateau: the floor
    # --- loop ---
    epochs: int = 10  # upper bound on epochs
    batch_size: int = 64  # examples per optimiser step
    patience: int = 0  # early stopping: epochs without a better monitored metric; 0 = off
    # points inside the first epoch, as shares of the training split in (0, 1), strictly
    # increasing, where the dev split is scored too (e.g. [0.111, 0.333]): the first epoch's
    # order is then stratified, so each point has trained on a stratified share of the data;
    # () = score whole epochs only
    fractions: tuple[float, ...] = ()
    monitor: str = "dev_loss"  # metric for early stopping and model selection
    # k-fold cross-validation: one network per fold of the training split (train and dev
    # together; stratified for classification), dev_fraction unused; 1 = one dev split
    folds: int = 1
    repeats: int = 1  # networks (seeds) per fold; a trial's value is the mean over all of them
    seed: int = 0  # seeds init, dropout and batch order
    device: str = "auto"  # "auto" (cuda when present), "cpu", "cuda", "cuda:N"

    def __post_init__(self) -> None:
        # Types first, whoever built the config (a file, `replace`, or code): TOML and JSON
        # give lists and whole numbers, the frozen, hashable config stores tuples and floats.
        problems: list[str] = []
        for f in dataclasses.fields(self):
            try:
                value = _coerce(f.name, getattr(self, f.name), f.default)
            except TypeError as exc:
                problems.append(str(exc))
                value = f.default  # so that the other fields can still be checked
            object.__setattr__(self, f.name, value)
        problems += validate(self)
        if problems:
            raise ConfigError(problems)

    # --- conversion ---
    def to_dict(self) -> dict[str, Any]:
        """All fields, with tuples as lists and model_args as a plain dict (TOML/JSON-ready)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, ModelArgs):
                value = value.to_dict()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str | None = None) -> TrainConfig:
        """Builds a config from a mapping of field names; unknown keys are an error.

        Raises:
            ConfigError: with every problem found (unknown keys, wrong types, bad values).
        """
        if not isinstance(values, Mapping):
            raise ConfigError([f"expected a table of settings, got {values!r}"], source=source)
        known = field_names()
        problems = [
            f"unknown key '{key}'{_did_you_mean(str(key), known)}"
            for key in values
            if key not in known
        ]
        try:
            config = cls(**{key: value for key, value in values.items() if key in known})
        except ConfigError as exc:
            problems += exc.problems
        if problems:
            raise ConfigError(problems, source=source)
        return config

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed, validated like `from_dict`."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    # --- files ---
    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Reads a `.toml`, `.json` or `.yaml` file: the fields at top level or under `[train]`."""
        values = read_config_file(path)
        return cls.from_dict(values.get("train", values), source=str(path))

    def save(self, path: str | Path, *, extra: Mapping[str, Any] | None = None) -> None:
        """Writes the config (under `[train]`) and optional extra tables to `.toml` or `.json`."""
        write_config_file(path, {**(extra or {}), "train": self.to_dict()})


def metric_direction(name: str) -> str:
    """Which way a metric improves: "maximize" for dev_accuracy and dev_r2, else "minimize"."""
    return "maximize" if name in MAXIMIZED else "minimize"


def field_names() -> tuple[str, ...]:
    """The names of all `TrainConfig` fields, the vocabulary of search spaces."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parses a TOML or JSON (or YAML, when PyYAML is installed) file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"no such file: {path}"], source=str(path))
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
    except (ValueError, ImportError) as exc:  # tomllib, json and yaml errors are ValueErrors
        raise ConfigError([f"cannot parse: {exc}"], source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError(["the file must hold a table of settings"], source=str(path))
    return data


def write_config_file(path: str | Path, data: Mapping[str, Any]) -> None:
    """Writes `data` as TOML (default), JSON (`.json`) or YAML (`.yaml`/`.yml`)."""
    path = Path(path)
    if path.suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(dict(data), sort_keys=False)
    else:
        import tomli_w

        text = tomli_w.dumps(_toml_ready(data))
    path.write_text(text)


def validate(config: TrainConfig) -> list[str]:
    """Every problem with a config, as readable sentences; empty when it can run."""
    c = config
    problems: list[str] = []

    def choose(name: str, value: str, known: tuple[str, ...]) -> None:
        if value not in known:
            problems.append(
                f"{name} '{value}' is unknown{_did_you_mean(value, known)}; "
                f"choose one of: {', '.join(known)}"
            )

    problems += _model_problems(c)
    choose("activation", c.activation, ACTIVATION_NAMES)
    choose("init", c.init, INIT_NAMES)
    choose("optimizer", c.optimizer, OPTIMIZER_NAMES)
    choose("schedule", c.schedule, SCHEDULE_NAMES)
    choose("task", c.task, TASKS)
    problems += _monitor_problems(c)
    problems += _data_problems(c)
    problems += _split_problems(c)
    if not 0.0 <= c.test_fraction < 1.0:
        problems.append(f"test_fraction must be in [0, 1), got {c.test_fraction}")
    problems += _transfer_problems(c)
    problems += _pretrain_problems(c)
    if c.train_size < 0:
        problems.append(f"train_size must be >= 0 (0 = all), got {c.train_size}")
    if any(h <= 0 for h in c.hidden):
        problems.append(f"hidden sizes must be positive, got {list(c.hidden)}")
    if c.model == "cnn" and not c.channels:
        problems.append("a cnn needs at least one entry in channels")
    if any(ch <= 0 for ch in c.channels):
        problems.append(f"channels must be positive, got {list(c.channels)}")
    if not 0.0 <= c.dropout < 1.0:
        problems.append(f"dropout must be in [0, 1), got {c.dropout}")
    if not (c.lr > 0.0 and math.isfinite(c.lr)):
        problems.append(f"lr must be a positive number, got {c.lr}")
    if not 0.0 <= c.momentum < 1.0:
        problems.append(f"momentum must be in [0, 1), got {c.momentum}")
    if c.momentum > 0.0 and c.optimizer not in ("sgd", "rmsprop"):
        problems.append(f"momentum applies to sgd and rmsprop only, not '{c.optimizer}'")
    if c.nesterov and (c.optimizer != "sgd" or c.momentum <= 0.0):
        problems.append("nesterov needs optimizer 'sgd' with momentum > 0")
    for name in ("weight_decay", "l1", "clip_value", "clip_norm", "min_lr"):
        if getattr(c, name) < 0.0:
            problems.append(f"{name} must be >= 0, got {getattr(c, name)}")
    if not 0.0 <= c.l1_ratio <= 1.0:
        problems.append(f"l1_ratio must be in [0, 1], got {c.l1_ratio}")
    if not 0.0 < c.gamma <= 1.0:
        problems.append(f"gamma must be in (0, 1], got {c.gamma}")
    if not 0.0 < c.plateau_factor < 1.0:
        problems.append(f"plateau_factor must be in (0, 1), got {c.plateau_factor}")
    if c.step_size < 1:
        problems.append(f"step_size must be >= 1, got {c.step_size}")
    if c.plateau_patience < 0:
        problems.append(f"plateau_patience must be >= 0, got {c.plateau_patience}")
    if list(c.milestones) != sorted(set(c.milestones)) or any(m < 1 for m in c.milestones):
        problems.append(f"milestones must be increasing epochs >= 1, got {list(c.milestones)}")
    if c.schedule == "piecewise" and not c.milestones:
        problems.append("schedule 'piecewise' needs milestones, e.g. milestones = [5, 8]")
    if c.min_lr >= c.lr and c.schedule == "cosine":
        problems.append(f"min_lr ({c.min_lr}) must be below lr ({c.lr}) for a cosine schedule")
    if c.epochs < 1:
        problems.append(f"epochs must be >= 1, got {c.epochs}")
    if c.batch_size < 1:
        problems.append(f"batch_size must be >= 1, got {c.batch_size}")
    if c.patience < 0:
        problems.append(f"patience must be >= 0 (0 = no early stopping), got {c.patience}")
    problems += _fraction_problems(c)
    if not (c.device in ("auto", "cpu", "cuda", "mps") or c.device.startswith("cuda:")):
        problems.append(f"device '{c.device}' is unknown; use auto, cpu, cuda or cuda:N")
    return problems


def _model_problems(c: TrainConfig) -> list[str]:
    """The model is ours (no model_args) or a factory reference (checked for syntax only)."""
    if c.model in MODELS:
        if c.model_args:
            return [
                f"model_args ({', '.join(c.model_args)}) apply to a factory model, not "
                f"'{c.model}'; set its own fields (hidden, channels, ...) or name a factory "
                f"such as 'models.py:build'"
            ]
        return []
    if ":" not in c.model:
        return [
            f"model '{c.model}' is unknown{_did_you_mean(c.model, MODELS)}; name a factory "
            f"('models.py:build' or 'package.module:build') or choose one of: {', '.join(MODELS)}"
        ]
    problems = []
    if parse_reference(c.model) is None:
        problems.append(
            f"model '{c.model}' is not a factory reference; write 'package.module:function' "
            f"or 'path/to/models.py:function'"
        )
    for key in c.model_args:
        if key in RESERVED_ARGS:
            problems.append(
                f"model_args.{key} is set by the trainer"
                + ("" if key in ("input_shape", "num_classes") else f"; set {key} itself")
            )
        elif not key.isidentifier():
            problems.append(f"model_args key '{key}' is not a Python parameter name")
    return problems


def is_study_reference(text: str) -> bool:
    """Whether `init_from` names a study's kept weights, "NAME@URL" or "NAME@URL#TRIAL"
    (hpstudy fetches them into a file before a run starts)."""
    name, at, url = text.partition("@")
    return bool(name and at and "://" in url)


def _split_problems(c: TrainConfig) -> list[str]:
    """dev_fraction, folds and repeats: how the training split is cut and trained on.

    Whether `folds` fits the data (no more folds than the smallest class has examples) is
    checked when the data is split (`trainer.fold_indices`).
    """
    problems = []
    if not 0.0 <= c.dev_fraction < 1.0:
        problems.append(f"dev_fraction must be in [0, 1) (0 = no dev split), got {c.dev_fraction}")
    if c.folds < 1:
        problems.append(f"folds must be >= 1 (1 = one dev split, 5 = 5-fold), got {c.folds}")
    if c.repeats < 1:
        problems.append(f"repeats must be >= 1 (networks per configuration), got {c.repeats}")
    if c.dev_fraction == 0.0 and (c.folds > 1 or c.repeats > 1 or c.patience):
        problems.append(
            "dev_fraction = 0 trains on every example with nothing to select on: it needs "
            "folds = 1, repeats = 1 and patience = 0 (set epochs instead); or hold out a dev "
            "share, e.g. dev_fraction = 0.1"
        )
    return problems


def _fraction_problems(c: TrainConfig) -> list[str]:
    shares = list(c.fractions)
    if all(0.0 < f < 1.0 for f in shares) and shares == sorted(set(shares)):
        return []
    return [
        f"fractions must be strictly increasing shares of the training split in (0, 1), "
        f"e.g. fractions = [0.111, 0.333] (or [] for whole epochs only), got {shares}"
    ]


def _transfer_problems(c: TrainConfig) -> list[str]:
    """`init_from` names a .pt/.pth file (found when the run starts); `freeze` counts layers."""
    problems = []
    if (
        c.init_from
        and not c.init_from.lower().endswith(WEIGHTS_SUFFIXES)
        and not is_study_reference(c.init_from)
    ):
        problems.append(
            f"init_from must name a .pt or .pth state-dict file (as "
            f"torch.save(model.state_dict(), path) writes it) or a study's kept weights as "
            f"NAME@URL or NAME@URL#TRIAL, got '{c.init_from}'"
        )
    if c.freeze < 0:
        problems.append(f"freeze must be >= 0 (0 = train every layer), got {c.freeze}")
    return problems


def _pretrain_problems(c: TrainConfig) -> list[str]:
    """pretrain_epochs, pretrain_noise and labels; whether a factory's network can be
    pre-trained is checked when it is built (`trainer.pretrain`)."""
    problems = []
    if c.pretrain_epochs < 0:
        problems.append(
            f"pretrain_epochs must be >= 0 (0 = no pre-training), got {c.pretrain_epochs}"
        )
    if not 0.0 <= c.pretrain_noise < 1.0:
        problems.append(
            f"pretrain_noise must be in [0, 1) (the share of inputs masked), got {c.pretrain_noise}"
        )
    if c.labels < 0:
        problems.append(
            f"labels must be >= 0 (0 = every training row keeps its label), got {c.labels}"
        )
    if c.pretrain_epochs and c.model == "cnn":
        problems.append(
            "pretrain_epochs applies to model 'mlp' or a factory of nn.Linear layers in "
            "sequence, not 'cnn'; set pretrain_epochs = 0 or model = 'mlp'"
        )
    if c.pretrain_epochs and (c.init_from or c.freeze):
        problems.append(
            "pretrain_epochs starts the network from unlabelled data, init_from and freeze from "
            "stored weights: use one or the other (set pretrain_epochs = 0, or drop init_from "
            "and freeze)"
        )
    if c.labels and c.task != "classification":
        problems.append(
            "labels keeps a stratified share of labelled rows, for classification; with "
            "task = 'regression' use train_size"
        )
    return problems


def _monitor_problems(c: TrainConfig) -> list[str]:
    fitting = TASK_METRICS.get(c.task, MONITORS)
    if c.monitor in fitting:
        return []
    if c.monitor in MONITORS:
        return [
            f"monitor '{c.monitor}' does not fit task '{c.task}'; choose one of: "
            f"{', '.join(fitting)}"
        ]
    return [
        f"monitor '{c.monitor}' is unknown{_did_you_mean(c.monitor, MONITORS)}; "
        f"choose one of: {', '.join(fitting)}"
    ]


def _data_problems(c: TrainConfig) -> list[str]:
    if not c.dataset:
        return [
            "dataset is empty; use 'mnist', 'digits', an .npz or .csv file, an image folder "
            "or a loader function ('loaders.py:load')"
        ]
    problems = []
    is_csv = c.dataset.lower().endswith(".csv")
    if is_csv and not c.target:
        problems.append(
            f"dataset '{c.dataset}' is a CSV file: set target to its label column (or a list "
            f'of columns), e.g. target = "label"'
        )
    if c.target and not is_csv:
        problems.append(f"target names CSV columns, but dataset '{c.dataset}' is not a .csv file")
    if any(not name for name in c.target) or len(set(c.target)) != len(c.target):
        problems.append(f"target must name distinct, non-empty columns, got {list(c.target)}")
    if c.task == "classification" and len(c.target) > 1:
        problems.append(
            f"classification takes one target column, got {len(c.target)}; "
            f'use task = "regression" for several'
        )
    return problems


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Checks a file value against the field's type (taken from its default)."""
    if key == "target":
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"target must be a column name or a list of them, got {value!r}")
        return tuple(value)
    if key == "fractions":
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise TypeError(f"fractions must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    if key == "model_args":
        if not isinstance(value, Mapping):
            raise TypeError(f"model_args must be a table of keyword arguments, got {value!r}")
        return value if isinstance(value, ModelArgs) else ModelArgs(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{key} must be a whole number, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{key} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError(f"{key} must be a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise TypeError(f"{key} must be a list of whole numbers, got {value!r}")
        return tuple(value)
    return value


def _did_you_mean(key: str, known: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _toml_ready(data: Any) -> Any:
    """TOML has no null: drop None values; tuples become lists."""
    if isinstance(data, Mapping):
        return {str(k): _toml_ready(v) for k, v in data.items() if v is not None}
    if isinstance(data, (list, tuple)):
        return [_toml_ready(v) for v in data]
    return data
