"""`hpstudy export`: the complete config plus provenance, a file `hpstudy train` runs alone."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest

from studies import StudyError
from studies.cli import main
from studies.results import export_best, train_file
from studies.storage import Provenance, open_storage
from trainer import TrainConfig, read_config_file

NAME = "tiny"


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory, tiny_study: Callable[..., str]) -> str:
    """A finished three-trial digits study, made by an hpstudy worker."""
    return tiny_study(tmp_path_factory.mktemp("export"), run=True)


@pytest.fixture(scope="module")
def study(study_url: str) -> optuna.Study:
    return optuna.load_study(study_name=NAME, storage=open_storage(study_url))


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A working folder with no database in it."""
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_the_file_holds_the_best_trials_complete_config(
    study_url: str, study: optuna.Study, tmp_path: Path, suffix: str
) -> None:
    path, _ = export_best(NAME, url=study_url, output=tmp_path / f"best{suffix}")
    assert TrainConfig.load(path).to_dict() == study.best_trial.user_attrs["config"]


def test_the_config_carries_the_trials_seed_and_sampled_values(
    study_url: str, study: optuna.Study, tmp_path: Path
) -> None:
    path, _ = export_best(NAME, url=study_url, output=tmp_path / "best.toml")
    config = TrainConfig.load(path)
    assert config.seed == study.best_trial.user_attrs["seed"]
    assert config.lr == study.best_trial.params["lr"]
    assert config.hidden == (16,)  # a fixed field too, not only the sampled ones


def test_provenance_names_study_trial_value_seed_versions_and_data(
    study_url: str, study: optuna.Study, tmp_path: Path
) -> None:
    path, _ = export_best(NAME, url=study_url, output=tmp_path / "best.toml")
    about = read_config_file(path)["provenance"]
    best = study.best_trial
    assert (about["study"], about["trial"], about["value"]) == (NAME, best.number, best.value)
    assert (about["metric"], about["seed"]) == ("dev_loss", best.user_attrs["seed"])
    assert set(about["versions"]) == {"python", "hpstudy", "torch", "optuna", "numpy"}
    assert about["data"]["dataset"] == "digits"
    assert len(about["data"]["fingerprint"]) == 16
    assert about["exported"].endswith("+00:00")
    assert about["torch_threads"] == best.user_attrs["torch_threads"] >= 1


def test_another_trial_by_number(study_url: str, tmp_path: Path) -> None:
    path, about = export_best(NAME, url=study_url, output=tmp_path / "t1.json", number=1)
    assert about.trial == 1
    assert read_config_file(path)["provenance"]["trial"] == 1


def test_the_file_reads_back_as_the_provenance_returned(study_url: str, tmp_path: Path) -> None:
    path, about = export_best(NAME, url=study_url, output=tmp_path / "best.toml")
    assert Provenance.from_dict(read_config_file(path)["provenance"]) == about


def test_train_runs_the_exported_file_alone_and_finds_the_trials_dev_loss(
    study_url: str, study: optuna.Study, elsewhere: Path
) -> None:
    export_best(NAME, url=study_url, output=elsewhere / "best.toml")
    lines: list[str] = []
    result, scores = train_file("best.toml", test=True, echo=lines.append)
    assert result.best is not None
    assert result.best.dev_loss == pytest.approx(study.best_value, abs=1e-4)
    assert 0.0 <= scores["test_accuracy"] <= 1.0
    assert not list(elsewhere.glob("*.db"))  # no database was needed, or made


def test_train_runs_on_the_thread_count_of_the_trial_unless_told(
    study_url: str, study: optuna.Study, elsewhere: Path
) -> None:
    import torch

    export_best(NAME, url=study_url, output=elsewhere / "best.toml")
    count = study.best_trial.user_attrs["torch_threads"]
    before = torch.get_num_threads()
    lines: list[str] = []
    train_file("best.toml", overrides={"epochs": 1}, echo=lines.append)
    plural = "s" if count != 1 else ""
    assert f"on cpu with {count} torch thread{plural}, as its trial did" in lines[0]
    lines.clear()
    train_file("best.toml", overrides={"epochs": 1}, threads=count + 1, echo=lines.append)
    assert f"on cpu with {count + 1} torch threads\n" in lines[0] + "\n"
    assert torch.get_num_threads() == before


def test_the_cli_writes_the_file_and_says_how_to_run_it(
    study_url: str, elsewhere: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", NAME, "--storage", study_url, "-o", "best.yaml"]) == 0
    out = capsys.readouterr().out
    assert "wrote best.yaml: trial" in out
    assert "hpstudy train best.yaml --test" in out


# Clear errors ----------------------------------------------------------------------------------


def error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Runs the CLI, expects the user-error exit, and returns the one-line message."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_an_unknown_study_lists_the_known_ones(
    study_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = error(capsys, "export", "nope", "--storage", study_url, "-o", str(tmp_path / "b.toml"))
    assert "no study named 'nope'" in err
    assert NAME in err


def test_an_unknown_trial_number(
    study_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = error(capsys, "export", NAME, "--storage", study_url, "--trial", "99")
    assert "has no trial 99" in err


def test_a_study_without_finished_trials(tmp_path: Path, tiny_study: Callable[..., str]) -> None:
    url = tiny_study(tmp_path)
    with pytest.raises(StudyError, match="no finished trial yet; run it first"):
        export_best(NAME, url=url, output=tmp_path / "best.toml")


def test_a_missing_database_file(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no study database at"):
        export_best(NAME, url=f"sqlite:///{tmp_path / 'none.db'}", output=tmp_path / "b.toml")
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("name", ["best.txt", "best", "best.ini"])
def test_an_unsupported_suffix(study_url: str, tmp_path: Path, name: str) -> None:
    with pytest.raises(StudyError, match=r"\.toml, \.json, \.yaml"):
        export_best(NAME, url=study_url, output=tmp_path / name)


def test_an_output_folder_that_does_not_exist(study_url: str, tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="does not exist"):
        export_best(NAME, url=study_url, output=tmp_path / "no" / "best.toml")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_path(study_url: str, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(StudyError, match="choose a path you can write to"):
        export_best(NAME, url=study_url, output=locked / "best.toml")


def test_a_file_name_the_system_refuses(study_url: str, tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="File name too long; choose a path you can write to"):
        export_best(NAME, url=study_url, output=tmp_path / ("b" * 300 + ".toml"))
