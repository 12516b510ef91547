"""Errors in the caller's words: the Python API names its parameters, never a flag."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import studies
from studies import ParameterError

SPEC = "digits-mlp"  # built in: loads without a file, and nothing below trains


def _export(tmp_path: Path) -> Any:
    return studies.export("s", storage=f"sqlite:///{tmp_path / 'none.db'}", trial=1, pick="x<=1")


# (the call, the parameter its error names): each refused before anything trains
CASES: dict[str, tuple[Callable[[Path], Any], str]] = {
    "plan workers": (lambda _: studies.plan(SPEC, budget="1h", workers=0), "workers"),
    "plan budget": (lambda _: studies.plan(SPEC, budget="soon"), "budget"),
    "lr_range steps": (lambda tmp: studies.lr_range(SPEC, steps=5, output=None), "steps"),
    "run workers": (lambda tmp: studies.run(SPEC, workers=0, progress=False), "workers"),
    "run gpus": (lambda tmp: studies.run(SPEC, gpus_per_worker=1), "gpus_per_worker"),
    "ablate factors": (lambda tmp: studies.ablate(SPEC, factors=[]), "factors"),
    "learning_curve sizes": (lambda tmp: studies.learning_curve("s", sizes=[0.5]), "sizes"),
    "learning_curve repeats": (lambda tmp: studies.learning_curve("s", repeats=0), "repeats"),
    "train threads": (lambda tmp: studies.train(tmp / "best.toml", threads=0), "threads"),
    "export trial and pick": (_export, "trial"),
    "fetch dataset": (lambda tmp: studies.fetch("cifar", data_dir=tmp), "dataset"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_api_error_names_the_parameter_not_a_flag(case: str, tmp_path: Path) -> None:
    call, parameter = CASES[case]
    with pytest.raises(ParameterError) as caught:
        call(tmp_path)
    assert parameter in caught.value.parameters
    assert f"`{parameter}" in str(caught.value)
    assert "--" not in str(caught.value)


def test_a_worker_without_a_database_names_the_storage_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(studies.STORAGE_ENV, raising=False)
    with pytest.raises(ParameterError, match="`storage=URL`") as caught:
        studies.worker("s")
    assert "--" not in str(caught.value)


def test_a_parameter_error_is_a_study_error() -> None:
    assert issubclass(ParameterError, studies.StudyError)


def test_worded_names_each_mapped_parameter_by_its_flag() -> None:
    error = ParameterError("choose `trial=N` or `pick`, not both; `seed` as it was")
    worded = error.worded({"trial": "--trial", "pick": "--pick"})
    assert worded == "choose --trial N or --pick, not both; `seed` as it was"
    assert error.parameters == ["trial", "pick", "seed"]


def test_worded_gives_a_flag_alone_for_true() -> None:
    assert ParameterError("add `ray=True`").worded({"ray": "--ray"}) == "add --ray"
