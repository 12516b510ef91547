"""Study specs: `[study]`, `[train]` and `[space.*]` from a TOML file, validated in full.

A spec is everything a worker needs: how to search (sampler, pruner, budget, seed), what is
fixed (`[train]`, the base `TrainConfig`) and what is searched (`[space.*]`). It is stored
with the study, so a worker on another machine needs only the study's name and storage URL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from search_space import Categorical, Float, SearchSpace, SpaceError, encode_point
from studies._errors import StudyError, did_you_mean
from studies.spec._objectives import Objectives, read_objectives
from studies.spec._ray import RaySettings, read_ray
from studies.spec._samplers import (
    DEFAULT_PRUNER,
    PRUNERS,
    SAMPLERS,
    check_pruner,
    check_sampler,
)
from studies.spec._study_values import Ablation, Target
from trainer import (
    BUILTIN_DATASETS,
    MONITORS,
    TASK_METRICS,
    ConfigError,
    TrainConfig,
    field_names,
    is_study_reference,
    metric_direction,
    parse_reference,
    read_config_file,
)
from trainer import resolve_data_path as _resolve

DEFAULT_STORAGE = "sqlite:///hpstudy.db"
# The study database when no --storage or spec names one; a worker started by `hpstudy run`
# finds its URL there, since a password in argv is readable by every user in `ps`.
STORAGE_ENV = "HPSTUDY_STORAGE"
ENV_PREFIX = "env:"  # storage = "env:NAME": the URL is environment variable NAME's value
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REPEAT = "repeat"  # an ablation's parameter: which of its seeds a run uses
KEEP_WEIGHTS = 3  # trials whose trained weights a study keeps, by default
AUTO_LR = (1e-6, 1.0)  # what `[space.lr] auto = true` may propose, unless low/high say
# Each metric a study can optimise, with its direction; which ones a task records is
# trainer.TASK_METRICS (accuracy for classification, RMSE and R² for regression).
METRICS = {name: metric_direction(name) for name in MONITORS}
# `TrainConfig` fields that hpstudy sets for every trial, so a spec may not.
SET_BY_STUDY = {
    "seed": "each trial gets its own seed from study.seed",
    "monitor": "it is study.metric",
    # trials of different fold counts or seeds per trial score on different dev rows
    "folds": "every trial must be scored on the same folds; set train.folds",
    "repeats": "every trial must average the same number of seeds; set train.repeats",
}


class SpecError(StudyError):
    """A spec that cannot run; lists every problem with its file and key."""

    def __init__(self, problems: list[str], *, source: str) -> None:
        self.problems = problems
        super().__init__(f"invalid study spec {source}:\n  - " + "\n  - ".join(problems))


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A validated study spec."""

    name: str
    storage: str
    metric: str  # "dev_loss" or "dev_accuracy"; the trial value is its best over the epochs
    sampler: dict[str, Any]  # {"name": "tpe", **constructor arguments}
    pruner: dict[str, Any]  # {"name": "successive_halving", **constructor arguments}
    n_trials: int | None  # the study's total budget of finished (complete or pruned) trials
    timeout: float | None  # seconds per `hpstudy run` invocation
    seed: int
    train: TrainConfig  # the fixed part; `monitor` is set to `metric`
    space: SearchSpace
    description: str = ""
    source: str = "<dict>"
    # Where relative paths of [train] (a model file, a loader, a data file) resolve first:
    # the spec file's folder. A worker elsewhere falls back to its current folder.
    folder: str = ""
    # Known configurations tried first (possibly partial): parameter name -> value.
    enqueue: tuple[dict[str, Any], ...] = ()
    # A new study's first trials come from the best trials of earlier studies of the same
    # task in its storage (`studies.workers._priors`); False: the sampler alone.
    priors: bool = True
    # Stop starting trials once a finished epoch reaches this.
    target: Target | None = None
    # [space.lr] auto = true: search lr inside bounds a range test proposes, per optimiser.
    lr_auto: bool = False
    # [train] fractions = "auto": `hpstudy run` times training and a dev evaluation once per
    # study and chooses the points inside the first epoch (`train.fractions` stays empty here)
    fractions_auto: bool = False
    # The best-epoch weights of the best this many complete trials stay in the database.
    keep_weights: int = KEEP_WEIGHTS
    # An ablation: its factors and seeds per cell; the space's `repeat` picks each seed.
    ablation: Ablation | None = None
    # Workers as Ray tasks (`hpstudy run --ray`); None: local worker processes.
    ray: RaySettings | None = None
    # Several objectives and/or constraints (`studies.spec._objectives`); none: `metric` alone.
    objectives: Objectives = dataclasses.field(default_factory=lambda: Objectives({}))

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    @property
    def directions(self) -> dict[str, str]:
        """Each objective's direction, in order: `objectives`, else `metric` alone."""
        return dict(self.objectives.directions) or {self.metric: self.direction}

    @property
    def multi(self) -> bool:
        """Whether the study has several objectives (a Pareto front, not one best)."""
        return len(self.directions) > 1

    @property
    def lr_bounds(self) -> tuple[float, float]:
        """The [low, high] of the space's `lr` (with `auto`: what the range test may propose)."""
        lr = self.space.get("lr")
        if not isinstance(lr, Float):
            return AUTO_LR
        return float(lr.low), float(lr.high)

    @property
    def search_path(self) -> tuple[str, ...]:
        """The folders the trainer looks in for relative model, loader and data paths."""
        return (self.folder,) if self.folder else ()

    def to_dict(self) -> dict[str, Any]:
        """The TOML-ready form, as read by `from_dict` (stored with the study)."""
        study: dict[str, Any] = {}
        # metric/direction or objectives, constraints, latency_batch: written together
        together = self.objectives.to_dict(metric=self.metric, direction=self.direction)
        for key in STUDY:
            if key.name in OBJECTIVE_KEYS:
                if key.name in together:
                    study[key.name] = together[key.name]
                continue
            value = getattr(self, key.name)
            if not key.omit(value):
                study[key.name] = key.dump(value)
        space = self.space.to_dict()
        if self.lr_auto:
            space["lr"] = {**space["lr"], "auto": True}
        train = self.train.to_dict()
        if self.fractions_auto:
            train["fractions"] = "auto"
        return {"study": study, "train": train, "space": space}

    def replace(self, **changes: Any) -> StudySpec:
        """The spec with fields changed, as they are (not validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> StudySpec:
        """Validates a whole spec; raises one `SpecError` listing every problem.

        Raises:
            SpecError: naming `source` and each bad key.
        """
        problems: list[str] = []
        # 1. The three tables, each checked on its own.
        tables = _tables(data, problems)
        study = _read_study(tables["study"], problems, train=tables["train"])
        train_table, fractions_auto = _auto_fractions(tables["train"], problems)
        train = _read_train(train_table, tables["space"], study["metric"], problems)
        space_table, lr_auto = _auto_lr(tables["space"], problems)
        space = _read_space(space_table, problems, ablation=study["ablation"] is not None)
        # 2. What only the tables together can tell.
        if space is not None and study["sampler"].get("name") == "grid":
            problems += _grid_problems(space, study["n_trials"])
        if space is not None:
            problems += _ablation_problems(study["ablation"], space)
        if train is not None and space is not None:
            problems += _enqueue_problems(study["enqueue"], train, space)
            problems += _target_task_problems(study["target"], train)
        if train is not None and space is not None and not problems:
            problems += _check_samples(train, space)
        if problems or train is None or space is None:
            raise SpecError(problems, source=source)
        fields = {key.name: key.keep(study[key.name]) for key in STUDY if key.field}
        return cls(
            **fields,
            train=train,
            space=space,
            source=source,
            lr_auto=lr_auto,
            fractions_auto=fractions_auto,
        )


@dataclasses.dataclass(frozen=True)
class StudyKey:
    """One key of `[study]`: its default, how it is read and checked, and how it is kept.

    `STUDY` declares every key once; reading, the unknown-key check, `StudySpec`'s fields and
    `to_dict` all follow it. A key's problems here are those of its value alone; what needs
    other keys or tables (metric and direction, the ablation's factors) is checked apart.
    """

    name: str
    default: Callable[[], Any] = lambda: None  # the value of a missing key
    # how a given value is read (a bare sampler name -> a table), adding problems found
    read: Callable[[Any, list[str]], Any] = lambda value, _problems: value
    check: Callable[[Any], list[str]] = lambda _value: []  # the problems of a read value
    keep: Callable[[Any], Any] = lambda value: value  # the `StudySpec` field, once valid
    dump: Callable[[Any], Any] = lambda value: value  # `to_dict`'s form of the field
    omit: Callable[[Any], bool] = lambda _value: False  # `to_dict` leaves the field out
    field: bool = True  # False: checked only (`direction` follows from the metric)


def _is_none(value: Any) -> bool:
    return value is None


def _problem(ok: Callable[[Any], bool], message: str) -> Callable[[Any], list[str]]:
    """A check that finds `message` (formatted with the value as `got`) unless `ok`."""
    return lambda value: [] if ok(value) else [message.format(got=repr(value))]


def _seconds(value: Any) -> bool:
    return value is None or (
        not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value < math.inf
    )


def _points(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(p, dict) for p in value)


STUDY = (
    StudyKey(
        "name",
        check=_problem(
            lambda v: isinstance(v, str) and bool(v.strip()),
            "study.name: required, a non-empty string",
        ),
        keep=str,
    ),
    StudyKey(
        "storage",
        default=lambda: default_storage(),
        check=lambda v: _storage_problems(v),
        keep=str,
    ),
    StudyKey("metric", default=lambda: "dev_loss", keep=str),  # checked with direction
    StudyKey("direction", field=False),  # the metric's, written for a reader's sake
    # objectives, constraints and latency_batch are read together (`read_objectives`) into
    # the one `objectives` field; the metric defaults to the first learning objective
    StudyKey("objectives", default=lambda: Objectives({})),
    StudyKey("constraints", field=False),
    StudyKey("latency_batch", field=False),
    StudyKey(
        "sampler",
        default=lambda: {"name": "tpe"},
        read=lambda v, problems: _named(v, "sampler", "tpe", problems),
        check=lambda v: check_sampler(v, prefix="study.sampler"),
        dump=dict,
    ),
    StudyKey(
        "pruner",
        default=lambda: dict(DEFAULT_PRUNER),
        read=lambda v, problems: _named(v, "pruner", DEFAULT_PRUNER, problems),
        check=lambda v: check_pruner(v, prefix="study.pruner"),
        dump=dict,
    ),
    StudyKey(
        "n_trials",
        check=_problem(
            lambda v: v is None or (_is_int(v) and v >= 1),
            "study.n_trials: must be a whole number >= 1, got {got}",
        ),
        omit=_is_none,
    ),
    StudyKey(
        "timeout",
        check=_problem(_seconds, "study.timeout: must be seconds > 0, got {got}"),
        keep=lambda v: None if v is None else float(v),
        omit=_is_none,
    ),
    StudyKey(
        "seed",
        default=lambda: 0,
        check=_problem(lambda v: _is_int(v), "study.seed: must be a whole number, got {got}"),
        keep=int,
    ),
    StudyKey("description", default=lambda: "", keep=str),
    StudyKey(
        "folder",
        default=lambda: "",
        check=_problem(
            lambda v: isinstance(v, str), "study.folder: must be a folder path, got {got}"
        ),
        keep=str,
        omit=lambda v: not v,
    ),
    StudyKey(
        "enqueue",
        default=lambda: [],
        check=_problem(
            _points,
            "study.enqueue: a list of tables of parameter values, e.g. "
            'enqueue = [{{ lr = 0.01, optimizer = "adam" }}]',
        ),
        keep=lambda v: tuple(dict(point) for point in v),
        dump=lambda v: [dict(point) for point in v],
        omit=lambda v: not v,
    ),
    StudyKey(
        "priors",
        default=lambda: True,
        check=_problem(
            lambda v: isinstance(v, bool),
            "study.priors: true (start from the best trials of earlier studies of the same "
            "task) or false, got {got}",
        ),
        keep=bool,
        omit=lambda v: v is True,
    ),
    StudyKey(
        "target",
        check=lambda v: _target_problems(v),
        keep=lambda v: None if v is None else Target.from_dict(v),
        dump=lambda v: v.to_dict(),
        omit=_is_none,
    ),
    StudyKey(
        "keep_weights",
        default=lambda: KEEP_WEIGHTS,
        check=_problem(
            lambda v: _is_int(v) and v >= 0,
            "study.keep_weights: how many trials' weights to keep (0 = none), a whole "
            "number >= 0; got {got}",
        ),
        keep=int,
        omit=lambda v: v == KEEP_WEIGHTS,
    ),
    StudyKey(  # checked against the space: `_ablation_problems`
        "ablation",
        keep=lambda v: Ablation.from_dict(v) if v else None,
        dump=lambda v: v.to_dict(),
        omit=_is_none,
    ),
    StudyKey(
        "ray",
        read=lambda v, problems: read_ray(v, problems),
        dump=lambda v: v.to_dict(),
        omit=_is_none,
    ),
)
STUDY_KEYS = tuple(key.name for key in STUDY)
# The keys `to_dict` writes from `StudySpec.objectives` (with the metric they decide).
OBJECTIVE_KEYS = ("metric", "direction", "objectives", "constraints", "latency_batch")


def _read_study(
    table: dict[str, Any], problems: list[str], *, train: dict[str, Any]
) -> dict[str, Any]:
    """`[study]`'s values by key, defaults filled in; adds each bad key's problem.

    Args:
        train: the `[train]` table, whose task decides which metrics an objective may name.
    """
    for name in table:
        if name not in STUDY_KEYS:
            problems.append(f"study.{name}: unknown key{did_you_mean(name, STUDY_KEYS)}")
    objectives = read_objectives(table, problems, task_metrics=_task_metrics(train))
    defaults = {"metric": objectives.metric or "dev_loss", "objectives": objectives}
    if len(objectives.directions) > 1:  # Optuna's pruners refuse several objectives
        defaults["pruner"] = {"name": "successive_halving"}
    values = {
        key.name: key.read(table[key.name], problems)
        if key.name in table and key.name != "objectives"
        else defaults.get(key.name, key.default())
        for key in STUDY
    }
    for key in STUDY:
        problems += key.check(values[key.name])
    problems += _study_problems(values)
    return values


def _task_metrics(train: dict[str, Any]) -> tuple[str, ...] | None:
    task = train.get("task", "classification")
    return TASK_METRICS.get(task) if isinstance(task, str) else None


def _study_problems(values: dict[str, Any]) -> list[str]:
    """What only several `[study]` keys together can tell."""
    metric, direction = values["metric"], values["direction"]
    found: list[str] = []
    if metric not in METRICS:
        found.append(f"study.metric: '{metric}' is unknown; choose one of: {', '.join(METRICS)}")
    elif direction is not None and direction != METRICS[metric]:
        found.append(f"study.direction: {metric} is always {METRICS[metric]}d, not '{direction}'")
    if values["n_trials"] is None and values["timeout"] is None:
        found.append("study: set n_trials and/or timeout, or the study never ends")
    return found


def _ablation_problems(ablation: Any, space: SearchSpace) -> list[str]:
    """An ablation names categorical factors of at least two values, and repeats seeds."""
    if ablation is None:
        return []
    if not isinstance(ablation, dict) or set(ablation) != {"factors", "repeats"}:
        return ["study.ablation: a table with factors (a list of names) and repeats"]
    problems = []
    factors, repeats = ablation["factors"], ablation["repeats"]
    if not _is_int(repeats) or repeats < 2:
        problems.append(f"study.ablation.repeats: at least 2 seeds per cell, got {repeats!r}")
    if not isinstance(factors, list) or not factors:
        return [*problems, "study.ablation.factors: a non-empty list of parameter names"]
    for factor in factors:
        param = space.get(factor)
        if not isinstance(param, Categorical):
            problems.append(
                f"study.ablation.factors: '{factor}' is not a categorical parameter of the "
                f"space{did_you_mean(str(factor), space.names)}"
            )
        elif len(param.choices) < 2:
            problems.append(
                f"study.ablation.factors: '{factor}' has one value ({param.choices[0]!r}); "
                f"a factor needs two or more to compare"
            )
    if REPEAT not in space:
        problems.append(f"space.{REPEAT}: an ablation's space picks the seed with '{REPEAT}'")
    return problems


def _target_problems(target: Any) -> list[str]:
    if target is None:
        return []
    if (
        not isinstance(target, dict)
        or len(target) != 1
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in target.values())
    ):
        return [
            f"study.target: one metric and the value that ends the study, e.g. "
            f"target = {{ dev_accuracy = 0.98 }}; got {target!r}"
        ]
    [metric] = target
    if metric not in METRICS:
        hint = did_you_mean(metric, METRICS)
        return [
            f"study.target: '{metric}' is not a metric a study records{hint}; "
            f"choose one of: {', '.join(METRICS)}"
        ]
    return []


def _target_task_problems(target: Any, train: TrainConfig) -> list[str]:
    if not isinstance(target, dict) or len(target) != 1:
        return []
    [metric] = target
    recorded = TASK_METRICS[train.task]
    if metric in METRICS and metric not in recorded:
        return [f"study.target: a {train.task} study records {', '.join(recorded)}, not {metric}"]
    return []


def _enqueue_problems(points: Any, train: TrainConfig, space: SearchSpace) -> list[str]:
    """Each known configuration must name searched parameters with values the space holds."""
    if not isinstance(points, list):
        return []
    problems: list[str] = []
    for index, point in enumerate(points):
        if not isinstance(point, dict):
            continue
        try:
            encode_point(space, point, base=train.to_dict(), prefix=f"study.enqueue[{index}]")
        except SpaceError as exc:
            problems += exc.problems
    return problems


def _tables(data: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    """`[study]`, `[train]` and `[space]` (empty where missing or not a table)."""
    problems += [
        f"unknown table [{k}]; a spec has [study], [train] and [space.*]"
        for k in data
        if k not in ("study", "train", "space")
    ]
    return {key: _table(data, key, problems) for key in ("study", "train", "space")}


def _read_train(
    values: dict[str, Any], space: dict[str, Any], metric: Any, problems: list[str]
) -> TrainConfig | None:
    """`[train]` as the base config; the study's metric is its monitor."""
    problems += _set_by_study(values, space, metric)
    task = values.get("task", "classification")
    recorded = TASK_METRICS.get(task) if isinstance(task, str) else None
    if metric in METRICS and recorded is not None and metric not in recorded:
        problems.append(f"study.metric: a {task} study records {', '.join(recorded)}, not {metric}")
    elif metric in METRICS:
        values = {**values, "monitor": metric}
    try:
        config = TrainConfig.from_dict(values)
    except ConfigError as exc:
        problems += [_train_problem(p) for p in exc.problems]
        return None
    if config.dev_fraction == 0.0:
        problems.append(
            "train.dev_fraction: 0 leaves no dev split to score trials on; hold one out "
            "(e.g. dev_fraction = 0.2) or cross-validate (folds = 5)"
        )
    problems += _init_from_problems(config.init_from)
    return config


def _init_from_problems(init_from: str) -> list[str]:
    """A study reference in `init_from` may not hold a password: every trial stores it."""
    if not is_study_reference(init_from):
        return []
    url = init_from.partition("@")[2].partition("#")[0]
    with contextlib.suppress(ArgumentError, ValueError):
        if make_url(url).password:
            return [
                "train.init_from: its URL holds a database password, which every trial and "
                "export would store; leave it out and put it in ~/.pgpass or PGPASSWORD, "
                "where the database driver finds it"
            ]
    return []


def _auto_fractions(train: dict[str, Any], problems: list[str]) -> tuple[dict[str, Any], bool]:
    """`[train] fractions = "auto"` taken out of the table the config reads."""
    fractions = train.get("fractions")
    if not isinstance(fractions, str):
        return train, False
    if fractions != "auto":
        problems.append(
            f"train.fractions: a list of shares of the first epoch such as [0.1111, 0.3333], "
            f'or "auto" (hpstudy run times the costs and chooses), got {fractions!r}'
        )
    return {k: v for k, v in train.items() if k != "fractions"}, fractions == "auto"


def _auto_lr(space: dict[str, Any], problems: list[str]) -> tuple[dict[str, Any], bool]:
    """`[space.lr] auto = true` taken out of the table the search space reads."""
    lr = space.get("lr")
    if not isinstance(lr, dict) or "auto" not in lr:
        return space, False
    auto = lr["auto"]
    if not isinstance(auto, bool):
        problems.append(f"space.lr.auto: true or false, got {auto!r}")
        return space, False
    table = {k: v for k, v in lr.items() if k != "auto"}
    if auto:
        extra = sorted(set(table) - {"low", "high", "log", "type", "when"})
        if extra:
            problems.append(
                f"space.lr: with auto = true the range test chooses the bounds; "
                f"{', '.join(extra)} cannot be set (low and high bound what it may propose)"
            )
        table = {"low": AUTO_LR[0], "high": AUTO_LR[1], **table, "log": True}
    return {**space, "lr": table}, auto


def _read_space(
    values: dict[str, Any], problems: list[str], *, ablation: bool = False
) -> SearchSpace | None:
    fields = (*field_names(), REPEAT) if ablation else field_names()
    try:
        return SearchSpace.from_dict(values, fields=fields, prefix="space")
    except SpaceError as exc:
        problems += exc.problems
        return None


def builtin_specs() -> dict[str, Path]:
    """Built-in spec names (e.g. 'mnist-mlp') and their files, shipped with the package."""
    folder = resources.files("studies.spec") / "specs"
    return {
        Path(entry.name).stem: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def load_spec(name_or_path: str) -> StudySpec:
    """Reads a built-in spec by name or a spec file by path, and validates it.

    Raises:
        SpecError: for an unknown name, an unreadable file, or an invalid spec.
    """
    builtins = builtin_specs()
    path = Path(name_or_path)
    if name_or_path in builtins and not path.is_file():
        path = builtins[name_or_path]
    elif not path.is_file():
        raise SpecError(
            [
                f"no spec file or built-in spec named '{name_or_path}'"
                f"{did_you_mean(name_or_path, builtins)}; built-in: {', '.join(sorted(builtins))}"
            ],
            source=name_or_path,
        )
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        raise SpecError(exc.problems, source=str(path)) from None
    study = data.get("study")
    if isinstance(study, dict) and isinstance(study.get("folder", ""), str):
        # Relative paths in [train] start beside the file, wherever hpstudy runs from.
        folder = path.parent / study.get("folder", "")
        data = {**data, "study": {**study, "folder": str(folder.resolve())}}
    spec = StudySpec.from_dict(data, source=str(path))
    check_data(spec)
    return spec


def check_data(spec: StudySpec) -> None:
    """Checks that the spec's data set is a built-in name, a loader, or a path that exists.

    Kept out of `StudySpec.from_dict`, which reads specs stored with studies whose data may
    live on another machine. The data's content is checked later, before the study starts.

    Raises:
        SpecError: naming `train.dataset`.
    """
    dataset = spec.train.dataset
    if dataset in BUILTIN_DATASETS or parse_reference(dataset) is not None:
        return
    if not Path(_resolve(dataset, spec.search_path)).exists():
        where = " and ".join([*spec.search_path, str(Path.cwd())])
        raise SpecError(
            [
                f"train.dataset: '{dataset}' is neither a built-in data set "
                f"({', '.join(BUILTIN_DATASETS)}), a loader ('module:function'), nor a .csv or "
                f".npz file or image folder that exists (relative paths start in {where})"
            ],
            source=spec.source,
        )


def _table(data: dict[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        problems.append(f"[{key}] must be a table, got {type(value).__name__}")
        return {}
    if key == "study" and not value:
        problems.append("[study] is missing; it needs at least name and n_trials")
    return value


def _named(
    value: Any, what: str, default: str | Mapping[str, Any], problems: list[str]
) -> dict[str, Any]:
    """A sampler or pruner entry: a bare name or a table with `name` and arguments.

    Args:
        default: the entry of a table without a name: a name, or a whole entry whose
            arguments the table's own override (`DEFAULT_PRUNER`: a table that sets only
            `reduction_factor` keeps the default's name and min_resource).
    """
    entry = {"name": default} if isinstance(default, str) else dict(default)
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict):
        return {**entry, **value} if "name" not in value else dict(value)
    known = ", ".join(SAMPLERS if what == "sampler" else PRUNERS)
    problems.append(f"study.{what}: give a name ({known}) or a table with name and arguments")
    return entry


def _check_samples(train: TrainConfig, space: SearchSpace) -> list[str]:
    """Catches a space whose samples make invalid configs (e.g. nesterov without momentum).

    Draws a few random samples and builds each config; a problem seen here would otherwise
    fail trials one by one after the study has started.
    """
    from search_space import nest, suggest

    problems: list[str] = []
    with quiet_optuna():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(32):
            trial = study.ask()
            base = train.to_dict()
            params = nest(suggest(trial, space, base=base), base=base)
            params.pop(REPEAT, None)
            try:
                train.replace(**params)
            except ConfigError as exc:
                problems += [
                    f"space: the sample {params} makes an invalid config: {p}" for p in exc.problems
                ]
                break
    return problems


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Without "A new study created in memory": a study made to draw a sample, not the
    user's, is no concern of theirs."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def default_storage() -> str:
    """`env:HPSTUDY_STORAGE` when that variable is set, else `sqlite:///hpstudy.db`.

    The variable's name, not its value, goes into the spec: the URL (and any password in
    it) is read where the study is opened (`studies.storage.resolve_storage`).
    """
    return f"{ENV_PREFIX}{STORAGE_ENV}" if os.environ.get(STORAGE_ENV) else DEFAULT_STORAGE


def _storage_problems(storage: Any) -> list[str]:
    """A storage URL must name a database SQLAlchemy knows (postgres:// is not one), or be
    `env:NAME`, a variable holding one."""
    if isinstance(storage, str) and storage.startswith(ENV_PREFIX):
        name = storage.removeprefix(ENV_PREFIX)
        if _ENV_NAME.fullmatch(name):
            return []
        return [
            f"study.storage: {storage!r} must name an environment variable after 'env:', "
            f"e.g. env:{STORAGE_ENV}"
        ]
    if not isinstance(storage, str) or "://" not in storage:
        return [
            f"study.storage: {storage!r} is not a database URL such as {DEFAULT_STORAGE!r} "
            f"(or env:NAME, an environment variable holding one)"
        ]
    try:
        url = make_url(storage)
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        return [
            f"study.storage: cannot use '{storage.split('://')[0]}://...': {exc}; "
            f"use e.g. {DEFAULT_STORAGE} or postgresql://user@host:5432/dbname"
        ]
    return []


def _set_by_study(train: dict[str, Any], space: dict[str, Any], metric: Any) -> list[str]:
    """Problems with `[train]` or `[space]` entries for the fields hpstudy sets itself."""
    problems = []
    for name, why in SET_BY_STUDY.items():
        if isinstance(space, dict) and name in space:
            problems.append(f"space.{name}: cannot be searched: {why}")
    if train.get("seed", 0) != 0:
        problems.append(f"train.seed: {SET_BY_STUDY['seed']}; set study.seed instead")
    if "monitor" in train and train["monitor"] != metric:
        problems.append(f"train.monitor: {SET_BY_STUDY['monitor']}; leave it out")
    return problems


def _train_problem(problem: str) -> str:
    """Leads a `ConfigError` problem with its key: "lr must be ..." -> "train.lr: lr must ..."."""
    if problem.startswith("unknown key '"):
        key, _, rest = problem.removeprefix("unknown key '").partition("'")
        return f"train.{key}: unknown key{rest}"
    first = problem.split(" ", 1)[0]
    return f"train.{first}: {problem}" if first in field_names() else f"train: {problem}"


def _grid_problems(space: SearchSpace, n_trials: Any) -> list[str]:
    """A grid must be expressible, and the budget must not repeat its points."""
    try:
        grid = space.grid()
    except SpaceError as exc:
        return [f"study.sampler: {p}" for p in exc.problems]
    points = math.prod(len(values) for values in grid.values())
    if _is_int(n_trials) and n_trials > points:
        return [
            f"study.n_trials: the grid has {points} points; {n_trials} trials would repeat "
            f"some of them (set n_trials = {points})"
        ]
    return []
