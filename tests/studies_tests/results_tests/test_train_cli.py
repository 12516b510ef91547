"""`hpstudy train CONFIG [--test]`: one progress line per epoch, then the results."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studies.cli import main

CONFIG = """\
[train]
dataset = "digits"
hidden = [16]
lr = 0.1
momentum = 0.9
epochs = 2
device = "cpu"
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "digits.toml"
    path.write_text(CONFIG)
    return path


def test_train_prints_a_line_per_epoch(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(config_file)]) == 0
    out = capsys.readouterr().out
    epochs = [line for line in out.splitlines() if line.startswith("epoch")]
    # Epochs count from 0, as in the stored trials and the dashboard; [k/n] is the progress.
    assert [line.split()[1:3] for line in epochs] == [["0", "[1/2]"], ["1", "[2/2]"]]
    assert all(re.search(r"dev loss [\d.]+ acc +[\d.]+%", line) for line in epochs)
    assert re.search(r"completed after 2 epochs .* dev accuracy [\d.]+%", out)
    assert "test" not in out


def test_train_with_test_reports_the_test_set(
    config_file: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["train", str(config_file), "--test"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"test loss ([\d.]+), test accuracy ([\d.]+)% \((\d+) examples\)", out)
    assert found is not None and found.group(3) == "359"
    assert float(found.group(2)) > 50.0


def test_overrides_apply(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(config_file), "--set", "epochs=1"]) == 0
    assert "epoch   0 [1/1]" in capsys.readouterr().out


def test_train_prints_the_points_inside_the_first_epoch(
    config_file: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["train", str(config_file), "--set", "epochs=1", "--set", "fractions=[0.5]"]) == 0
    out = capsys.readouterr().out
    assert "epoch   0 [50% of 1/1]" in out and "epoch   0 [1/1]" in out
    assert re.search(r"completed after 1 epochs", out)


def test_train_prints_the_pretraining_epochs_before_the_epochs(
    config_file: Path, capsys: pytest.CaptureFixture
) -> None:
    changes = ["--set", "epochs=1", "--set", "pretrain_epochs=2", "--set", "labels=50"]
    assert main(["train", str(config_file), *changes]) == 0
    lines = capsys.readouterr().out.splitlines()
    pre = [line for line in lines if line.startswith("pre-training")]
    assert [line.split()[1:4] for line in pre] == [["fc1", "epoch", "0"], ["fc1", "epoch", "1"]]
    assert all(
        re.search(r"reconstruction loss [\d.]+  \(1294 inputs\)", line) for line in pre
    )  # every training row, labelled or not
    first = next(i for i, line in enumerate(lines) if line.startswith("epoch"))
    assert lines.index(pre[-1]) < first


def test_train_test_of_folds_prints_each_networks_pretraining_epochs(
    config_file: Path, capsys: pytest.CaptureFixture
) -> None:
    changes = ["--set", "epochs=1", "--set", "pretrain_epochs=2", "--set", "labels=50"]
    assert main(["train", str(config_file), "--test", "--set", "folds=2", *changes]) == 0
    lines = capsys.readouterr().out.splitlines()
    pre = [line for line in lines if line.startswith("pre-training")]
    # the networks pre-train in turn, each naming itself, before the first lock-step epoch
    assert [(line.split()[1:4], line.split()[-1]) for line in pre] == [
        (["fc1", "epoch", "0"], "1/2"),
        (["fc1", "epoch", "1"], "1/2"),
        (["fc1", "epoch", "0"], "2/2"),
        (["fc1", "epoch", "1"], "2/2"),
    ]
    assert all(re.search(r"reconstruction loss [\d.]+  \(\d+ inputs\)", line) for line in pre)
    first = next(i for i, line in enumerate(lines) if line.startswith("epoch"))
    assert lines.index(pre[-1]) < first
    assert "the ensemble of 2 networks" in lines[-1]


def test_a_bad_config_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[train]\ndataset = "digits"\nlr = 0\n')
    assert main(["train", str(path)]) == 2
    assert "lr must be a positive number" in capsys.readouterr().err


def test_train_takes_a_thread_count(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    import torch

    before = torch.get_num_threads()
    assert main(["train", str(config_file), "--set", "epochs=1", "--threads", "3"]) == 0
    assert "on cpu with 3 torch threads\n" in capsys.readouterr().out
    assert torch.get_num_threads() == before  # restored afterwards


def test_train_refuses_zero_threads(config_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", str(config_file), "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
