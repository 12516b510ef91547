"""`hpstudy status`, `studies`, `trials` and `specs`, and their errors: one clear line each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from studies.cli import main  # the console script's entry point

if TYPE_CHECKING:
    from conftest import FinishedStudy

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/x"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_shows_counts_budget_and_best(
    digits_study: FinishedStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "status", digits_study.spec.name, "--storage", digits_study.url)
    best = min(t.value for t in digits_study.study.trials if t.state.name == "COMPLETE")
    assert code == 0
    assert "5 finished: 3 complete, 2 pruned; 0 failed" in out
    assert "budget 5 trials" in out
    assert f"best {best:.4f}" in out


def test_studies_lists_the_study(
    digits_study: FinishedStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "studies", "--storage", digits_study.url)
    row = next(line for line in out.splitlines() if digits_study.spec.name in line)
    assert code == 0 and "minimize" in row and " 5 " in row


def test_trials_lists_every_trial_with_its_stop_reason(
    digits_study: FinishedStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "trials", digits_study.spec.name, "--storage", digits_study.url)
    rows = [line for line in out.splitlines() if line.startswith("│ ") and "│ #" not in line]
    numbers = [row.split("│")[1].strip() for row in rows if row.split("│")[1].strip()]
    assert code == 0 and sorted(numbers) == ["0", "1", "2", "3", "4"]
    assert "diverged" in out and "pruned" in out and "completed" in out


def test_specs_lists_the_builtin_specs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "specs")
    assert code == 0
    assert all(name in out for name in ("digits-mlp", "mnist-mlp", "mnist-cnn"))


def test_the_reading_commands_never_import_torch() -> None:
    script = (
        "import sys; from studies.cli import main; main(['specs']); "
        "sys.exit(3 if 'torch' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, "hpstudy specs imported torch (slow start)"


@pytest.mark.parametrize("command", [["status", "s"], ["studies"], ["trials", "s"]])
def test_a_missing_database_is_one_line_and_stays_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    path = tmp_path / "none.db"
    code, out, err = run_cli(capsys, *command, "--storage", f"sqlite:///{path}")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"no study database at {path}" in err
    assert not path.exists()


@pytest.mark.parametrize(
    "command", [["status", "s"], ["studies"], ["trials", "s"], ["run", "digits-mlp"]]
)
@pytest.mark.parametrize("url", [UNREACHABLE, "sqlite:////nonexistent-folder/x/s.db"])
def test_an_unreachable_storage_is_one_line(
    capsys: pytest.CaptureFixture[str], command: list[str], url: str
) -> None:
    code, _, err = run_cli(capsys, *command, "--storage", url)
    assert code == 2
    assert err.startswith(f"hpstudy {command[0]}: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_a_reading_command_takes_its_storage_from_a_named_variable(
    digits_study: FinishedStudy, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUDY_DB", digits_study.url)
    code, out, _ = run_cli(capsys, "studies", "--storage", "env:STUDY_DB")
    assert code == 0 and digits_study.spec.name in out


def test_a_reading_command_defaults_to_hpstudy_storage(
    digits_study: FinishedStudy, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPSTUDY_STORAGE", digits_study.url)
    code, out, _ = run_cli(capsys, "status", digits_study.spec.name)
    assert code == 0 and "5 finished" in out


def test_an_unset_storage_variable_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STUDY_DB", raising=False)
    code, _, err = run_cli(capsys, "status", "s", "--storage", "env:STUDY_DB")
    assert code == 2 and err.count("\n") == 1
    assert "the environment variable STUDY_DB is not set" in err


def test_a_worker_without_a_database_is_told_how_to_name_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPSTUDY_STORAGE", raising=False)
    code, _, err = run_cli(capsys, "worker", "s")
    assert code == 2 and "--storage env:NAME" in err and "HPSTUDY_STORAGE" in err


def test_a_password_in_a_workers_own_storage_flag_is_warned_about_not_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(
        capsys, "worker", "s", "--storage", "postgresql://u:S3cr3t@127.0.0.1:1/x"
    )
    assert code == 2 and "warning: the password in --storage is visible" in err
    assert "S3cr3t" not in err


def test_an_unknown_study_names_the_known_ones(
    digits_study: FinishedStudy, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "status", "nope", "--storage", digits_study.url)
    assert code == 2 and f"studies there: {digits_study.spec.name}" in err
