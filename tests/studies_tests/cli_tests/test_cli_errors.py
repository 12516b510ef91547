"""The command line says the API's errors with its own flags, the ones the user typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies.cli import build_parser, main

SPEC = "digits-mlp"

# argv -> what stderr says; each refused before anything trains
CASES: dict[str, tuple[list[str], str]] = {
    "plan workers": (
        ["plan", SPEC, "--budget", "1h", "--workers", "0"],
        "--workers must be at least 1, got 0",
    ),
    "plan budget": (["plan", SPEC, "--budget", "soon"], "--budget takes a duration"),
    "lr-range steps": (["lr-range", SPEC, "--steps", "5"], "--steps must be at least 20"),
    "run workers": (["run", SPEC, "--workers", "0"], "--workers must be at least 1, got 0"),
    "run gpus": (
        ["run", SPEC, "--gpus-per-worker", "1"],
        "--gpus-per-worker: only for Ray workers; add --ray (",
    ),
    "run warm-start": (
        ["run", SPEC, "--warm-start", "missing.toml"],
        "--warm-start missing.toml: neither a config file",
    ),
    "ablate factors": (["ablate", SPEC, "--factors", ","], "--factors: name one or more"),
    "learning-curve sizes": (
        ["learning-curve", "s", "--sizes", "0.5"],
        "--sizes needs at least two different shares",
    ),
    "export trial and pick": (
        ["export", "s", "--trial", "1", "--pick", "x<=1"],
        "choose the trial with --trial or with --pick, not both",
    ),
    "train threads": (["train", "best.toml", "--threads", "0"], "--threads must be at least 1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_api_error_is_printed_with_the_commands_flag(
    case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # export, learning-curve: no hpstudy.db made here or anywhere
    argv, said = CASES[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err
    assert "`" not in err  # every parameter named was one of the command's flags
    assert "Traceback" not in err


def test_a_worker_without_a_database_is_told_its_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPSTUDY_STORAGE", raising=False)
    assert main(["worker", "s"]) == 2
    assert "--storage URL, --storage env:NAME" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "parameter", "flag"),
    [
        (["run", SPEC], "train_fields", "--set"),
        (["run", SPEC], "warm_start", "--warm-start"),
        (["train", "best.toml"], "overrides", "--set"),
        (["export", "s"], "output", "--output"),
    ],
)
def test_a_commands_flags_are_kept_by_the_parameter_they_set(
    argv: list[str], parameter: str, flag: str
) -> None:
    assert build_parser().parse_args(argv).flags[parameter] == flag
