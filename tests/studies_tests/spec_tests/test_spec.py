"""Study specs: the built-in ones, the round trip, and every validation error with file and key."""

from __future__ import annotations

import copy
import dataclasses
import logging
import tomllib
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import tomli_w

from search_space import Categorical, suggest
from studies import SpecError, StudySpec, builtin_specs, load_spec
from studies.spec import STUDY, STUDY_KEYS, Ablation, Target

BASE: dict[str, Any] = {
    "study": {"name": "t", "storage": "sqlite:///t.db", "n_trials": 4, "seed": 1},
    "train": {"dataset": "digits", "hidden": [16], "epochs": 2},
    "space": {
        "lr": {"low": 1e-4, "high": 1.0, "log": True},
        "optimizer": {"choices": ["sgd", "adam"]},
        "momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}},
    },
}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def problems_of(tmp_path: Path, data: dict[str, Any]) -> tuple[str, list[str]]:
    """The message and problems of loading `data` from a file; fails if it loads."""
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as caught:
        load_spec(str(path))
    assert str(path) in str(caught.value)
    return str(caught.value), caught.value.problems


def changed(**tables: dict[str, Any]) -> dict[str, Any]:
    """BASE with keys set (None deletes) in the named tables."""
    data = copy.deepcopy(BASE)
    for table, values in tables.items():
        for key, value in values.items():
            if value is None:
                data[table].pop(key, None)
            else:
                data[table][key] = value
    return data


@pytest.mark.parametrize("name", sorted(builtin_specs()))
def test_each_builtin_spec_validates(name: str) -> None:
    spec = load_spec(name)
    assert spec.name == name
    assert spec.n_trials is not None and spec.train.epochs >= 1 and len(spec.space) >= 2


@pytest.mark.parametrize("name", sorted(builtin_specs()))
def test_a_spec_survives_the_dict_round_trip(name: str) -> None:
    spec = load_spec(name)
    again = StudySpec.from_dict(spec.to_dict(), source=spec.source)
    assert again == spec


def test_a_spec_survives_the_file_round_trip(tmp_path: Path) -> None:
    spec = load_spec(str(write(tmp_path, BASE)))
    path = tmp_path / "again.toml"
    path.write_text(tomli_w.dumps(spec.to_dict()))
    assert load_spec(str(path)).to_dict() == spec.to_dict()


def test_the_mnist_mlp_spec_searches_the_lectures_choices() -> None:
    names = set(load_spec("mnist-mlp").space.names)
    lecture = {"lr", "momentum", "dropout", "weight_decay", "init", "schedule", "optimizer"}
    assert lecture | {"batch_norm"} <= names


def test_the_metric_is_the_trainers_monitor() -> None:
    spec = StudySpec.from_dict(changed(study={"metric": "dev_accuracy"}))
    assert spec.train.monitor == "dev_accuracy" and spec.direction == "maximize"


@pytest.mark.parametrize(
    ("tables", "key"),
    [
        ({"study": {"colour": "red"}}, "study.colour"),
        ({"study": {"name": None}}, "study.name"),
        ({"study": {"n_trials": None}}, "study: set n_trials"),
        ({"study": {"n_trials": 0}}, "study.n_trials"),
        ({"study": {"n_trials": True}}, "study.n_trials"),
        ({"study": {"timeout": -5}}, "study.timeout"),
        ({"study": {"seed": 1.5}}, "study.seed"),
        ({"study": {"metric": "dev_acc"}}, "study.metric"),
        ({"study": {"direction": "maximize"}}, "study.direction"),
        ({"study": {"storage": "hpstudy.db"}}, "study.storage"),
        ({"study": {"storage": "postgres://u@h/db"}}, "study.storage"),
        ({"study": {"storage": "env:"}}, "study.storage"),
        ({"study": {"storage": "env:MY-DB"}}, "study.storage"),
        ({"train": {"init_from": "other@postgresql://hp:pw@h/db"}}, "train.init_from"),
        ({"study": {"sampler": {"name": "bayes"}}}, "study.sampler.name"),
        ({"study": {"sampler": {"name": "tpe", "n_startup": 3}}}, "study.sampler.n_startup"),
        ({"study": {"sampler": {"name": "tpe", "seed": 3}}}, "study.sampler.seed"),
        ({"study": {"pruner": {"name": "median", "warmup": 2}}}, "study.pruner.warmup"),
        ({"study": {"pruner": {"name": "hyper"}}}, "study.pruner.name"),
        ({"study": {"pruner": {"name": "percentile"}}}, "study.pruner.percentile"),
        ({"study": {"pruner": {"name": "median", "n_warmup_steps": -1}}}, "study.pruner"),
        ({"study": {"sampler": "grid"}}, "study.sampler: space.lr"),
        ({"train": {"epoch": 3}}, "train.epoch"),
        ({"train": {"lr": -1.0}}, "train.lr"),
        ({"train": {"hidden": "wide"}}, "train.hidden"),
        ({"train": {"seed": 7}}, "train.seed"),
        ({"train": {"monitor": "dev_accuracy"}}, "train.monitor"),
        ({"space": {"optimiser": {"choices": ["sgd"]}}}, "space.optimiser"),
        ({"space": {"lr": {"low": 1.0, "high": 0.1}}}, "space.lr"),
        ({"space": {"lr": {"low": 0.0, "high": 0.1, "log": True}}}, "space.lr"),
        ({"space": {"optimizer": {"choices": []}}}, "space.optimizer"),
        ({"space": {"seed": {"low": 1, "high": 3}}}, "space.seed"),
        (
            {"space": {"momentum": {"low": 0.0, "high": 0.9, "when": {"opt": ["sgd"]}}}},
            "space.momentum",
        ),
        ({"space": {"nesterov": {"choices": [False, True]}}}, "space: the sample"),
    ],
)
def test_a_bad_spec_names_its_file_and_key(
    tmp_path: Path, tables: dict[str, dict[str, Any]], key: str
) -> None:
    message, problems = problems_of(tmp_path, changed(**tables))
    assert any(p.startswith(key) for p in problems), message


# A value other than the default for every [study] key, valid with BASE.
CHANGED: dict[str, Any] = {
    "name": "other",
    "storage": "sqlite:///other.db",
    "metric": "dev_accuracy",
    "direction": "maximize",
    "sampler": {"name": "random"},
    "pruner": {"name": "none"},
    "n_trials": 9,
    "timeout": 30.0,
    "seed": 5,
    "description": "why this study",
    "folder": "/somewhere",
    "enqueue": [{"lr": 0.01}],
    "priors": False,
    "target": {"dev_accuracy": 0.9},
    "keep_weights": 0,
    "ablation": {"factors": ["optimizer"], "repeats": 2},
    "ray": {"address": "auto", "cpus_per_worker": 2.0, "gpus_per_worker": 0.0},
    "objectives": {"dev_accuracy": "max", "params": "min"},
    "constraints": {"params": "<= 50000"},
    "latency_batch": 8,
}


def test_each_study_key_is_declared_once() -> None:
    assert len(STUDY_KEYS) == len(set(STUDY_KEYS))
    kept = {key.name for key in STUDY if key.field}
    fields = {f.name for f in dataclasses.fields(StudySpec)}
    assert kept == fields - {"train", "space", "source", "lr_auto", "fractions_auto"}


@pytest.mark.parametrize("key", STUDY_KEYS)
def test_each_study_key_survives_the_round_trip(key: str) -> None:
    data = changed(study={key: CHANGED[key]})
    if key == "ablation":
        data["space"]["repeat"] = {"choices": [0, 1]}
    if key == "direction":
        data["study"]["metric"] = "dev_accuracy"
    if key in ("constraints", "latency_batch"):  # what the objectives' table holds too
        data["study"]["objectives"] = CHANGED["objectives"]
    spec = StudySpec.from_dict(data)
    assert spec.to_dict()["study"][key] == CHANGED[key]
    assert StudySpec.from_dict(spec.to_dict()) == spec


def test_priors_is_true_or_false() -> None:
    assert StudySpec.from_dict(changed()).priors is True
    with pytest.raises(SpecError) as caught:
        StudySpec.from_dict(changed(study={"priors": "no"}))
    assert caught.value.problems[0].startswith("study.priors: true (start from the best")


def test_an_unknown_study_key_is_refused_with_the_closest_one() -> None:
    with pytest.raises(SpecError) as caught:
        StudySpec.from_dict(changed(study={"n_trial": 3}))
    assert caught.value.problems == ["study.n_trial: unknown key (did you mean 'n_trials'?)"]


@pytest.mark.parametrize(
    "value", [Target("dev_accuracy", 0.98), Target("dev_loss", 0.1), Ablation(("init", "lr"), 3)]
)
def test_a_study_value_survives_its_dict_round_trip(value: Target | Ablation) -> None:
    assert type(value).from_dict(value.to_dict()) == value


@pytest.mark.parametrize(
    ("target", "value", "met"),
    [
        (Target("dev_accuracy", 0.9), 0.95, True),
        (Target("dev_accuracy", 0.9), 0.85, False),
        (Target("dev_loss", 0.1), 0.05, True),
        (Target("dev_loss", 0.1), 0.2, False),
    ],
)
def test_a_target_is_met_in_its_metrics_direction(target: Target, value: float, met: bool) -> None:
    assert target.met_by(value) is met


def test_the_spec_keeps_its_target_and_ablation_as_values() -> None:
    data = changed(study={"target": {"dev_loss": 0.1}, "ablation": CHANGED["ablation"]})
    data["space"]["repeat"] = {"choices": [0, 1]}
    spec = StudySpec.from_dict(data)
    assert spec.target == Target("dev_loss", 0.1)
    assert spec.ablation == Ablation(("optimizer",), 2)


def test_storage_may_name_an_environment_variable() -> None:
    spec = StudySpec.from_dict(changed(study={"storage": "env:STUDY_DB"}))
    assert spec.storage == "env:STUDY_DB"


def test_without_storage_a_spec_uses_hpstudy_storage_when_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HPSTUDY_STORAGE", "postgresql://hp@db-host/hp")
    data = changed()
    data["study"].pop("storage", None)
    # The variable's name, not its value: the URL is read where the study is opened.
    assert StudySpec.from_dict(data).storage == "env:HPSTUDY_STORAGE"


def test_without_storage_or_variable_a_spec_uses_the_local_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HPSTUDY_STORAGE", raising=False)
    data = changed()
    data["study"].pop("storage", None)
    assert StudySpec.from_dict(data).storage == "sqlite:///hpstudy.db"


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    data = changed(study={"colour": "red"}, train={"epoch": 3}, space={"lr": {"low": 2, "high": 1}})
    _, problems = problems_of(tmp_path, data)
    assert {p.split(":")[0] for p in problems} >= {"study.colour", "train.epoch", "space.lr"}


def test_a_budget_larger_than_the_grid_is_refused(tmp_path: Path) -> None:
    data = changed(
        study={"sampler": "grid", "n_trials": 5},
        space={"lr": None, "momentum": None, "batch_size": {"choices": [16, 32]}},
    )
    _, problems = problems_of(tmp_path, data)
    assert problems == [
        "study.n_trials: the grid has 4 points; 5 trials would repeat some of them "
        "(set n_trials = 4)"
    ]


def test_a_grid_spec_that_fits_validates(tmp_path: Path) -> None:
    data = changed(
        study={"sampler": "grid", "n_trials": 4},
        space={"lr": None, "momentum": None, "batch_size": {"choices": [16, 32]}},
    )
    assert load_spec(str(write(tmp_path, data))).sampler == {"name": "grid"}


def test_a_missing_dataset_file_is_named(tmp_path: Path) -> None:
    message, problems = problems_of(tmp_path, changed(train={"dataset": "nothere.npz"}))
    assert problems[0].startswith("train.dataset") and "nothere.npz" in message


def test_an_unparsable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[study\nname = 1\n")
    with pytest.raises(SpecError, match=r"broken\.toml"):
        load_spec(str(path))


def test_an_unknown_builtin_name_suggests_the_closest() -> None:
    with pytest.raises(SpecError, match="did you mean 'mnist-mlp'"):
        load_spec("mnist-mpl")


def test_loading_a_spec_logs_and_warns_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_spec("digits-mlp")
    finally:
        optuna.logging.set_verbosity(verbosity)
    assert [str(w.message) for w in caught] == []
    assert "A new study created" not in capfd.readouterr().err


def test_a_fixed_trial_suggests_from_a_spec_space() -> None:
    spec = load_spec("digits-mlp")
    values = {
        "lr": 0.01,
        "optimizer": "adam",
        "dropout": 0.1,
        "weight_decay": 1e-4,
        "init": "he_normal",
        "batch_norm": True,
    }
    params = suggest(optuna.trial.FixedTrial(values), spec.space, base=spec.train.to_dict())
    assert params == values  # momentum is inactive for adam: not suggested
    assert spec.train.replace(**params).optimizer == "adam"


def test_a_fixed_trial_for_sgd_needs_its_momentum() -> None:
    spec = load_spec("digits-mlp")
    values = {"lr": 0.1, "optimizer": "sgd", "dropout": 0.0, "weight_decay": 1e-5}
    values |= {"init": "default", "batch_norm": False}
    with pytest.raises(ValueError, match="momentum"):
        suggest(optuna.trial.FixedTrial(values), spec.space, base=spec.train.to_dict())
    params = suggest(
        optuna.trial.FixedTrial({**values, "momentum": 0.9}), spec.space, base=spec.train.to_dict()
    )
    assert params["momentum"] == 0.9


def test_builtin_specs_ship_as_package_files() -> None:
    for name, path in builtin_specs().items():
        assert tomllib.loads(path.read_text())["study"]["name"] == name


def test_fractions_auto_is_kept_apart_from_the_config(tmp_path: Path) -> None:
    spec = load_spec(str(write(tmp_path, changed(train={"fractions": "auto"}))))
    assert spec.fractions_auto and spec.train.fractions == ()
    assert spec.to_dict()["train"]["fractions"] == "auto"
    assert StudySpec.from_dict(spec.to_dict()).fractions_auto


def test_fractions_in_a_spec_are_the_configs(tmp_path: Path) -> None:
    spec = load_spec(str(write(tmp_path, changed(train={"fractions": [0.25, 0.5]}))))
    assert not spec.fractions_auto and spec.train.fractions == (0.25, 0.5)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "train.fractions: a list of shares of the first epoch such as [0.1111, 0.3333]"),
        ([0.5, 0.25], "train.fractions: fractions must be strictly increasing shares"),
    ],
)
def test_bad_fractions_name_the_key(tmp_path: Path, value: Any, message: str) -> None:
    text, _ = problems_of(tmp_path, changed(train={"fractions": value}))
    assert message in text


def test_pretraining_is_searched_like_any_field(tmp_path: Path) -> None:
    data = changed(
        train={"labels": 50, "pretrain_noise": 0.3},
        space={
            "pretrain_epochs": {"choices": [0, 3]},  # on or off
            "pretrain_noise": {"low": 0.1, "high": 0.5, "when": {"pretrain_epochs": [3]}},
        },
    )
    spec = load_spec(str(write(tmp_path, data)))
    values = {"lr": 0.1, "optimizer": "adam", "pretrain_epochs": 3, "pretrain_noise": 0.4}
    params = suggest(optuna.trial.FixedTrial(values), spec.space, base=spec.train.to_dict())
    config = spec.train.replace(**params)
    assert (config.labels, config.pretrain_epochs, config.pretrain_noise) == (50, 3, 0.4)


def test_pretraining_a_cnn_is_refused_with_the_key(tmp_path: Path) -> None:
    data = changed(train={"model": "cnn", "pretrain_epochs": 2, "channels": [4]})
    message, _ = problems_of(tmp_path, data)
    assert "pretrain_epochs" in message and "not 'cnn'" in message


def test_the_few_labels_spec_turns_pretraining_on_and_off() -> None:
    spec = load_spec("mnist-mlp-1000-labels")
    assert (spec.train.dataset, spec.train.labels, spec.train.model) == ("mnist", 1000, "mlp")
    pretrain = spec.space.get("pretrain_epochs")
    assert isinstance(pretrain, Categorical) and 0 in pretrain.choices
    assert any(c for c in pretrain.choices)  # and a number of epochs: on
    assert "pretrain_noise" in spec.space
    off = {"lr": 0.01, "optimizer": "adam", "dropout": 0.1, "weight_decay": 1e-5}
    for epochs in pretrain.choices:
        values = {**off, "pretrain_epochs": epochs, "pretrain_noise": 0.3}
        params = suggest(optuna.trial.FixedTrial(values), spec.space, base=spec.train.to_dict())
        config = spec.train.replace(**params)
        assert config.pretrain_epochs == epochs
        assert ("pretrain_noise" in params) == bool(epochs)  # searched only when it is on
