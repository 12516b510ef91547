"""A study whose trials pre-train: the records are kept with each trial and drawn apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from studies import SpecError, StudySpec
from studies.analysis import plot_learning_curves
from studies.storage import TrialAttrs, create_or_resume, open_storage
from studies.workers import WorkerOptions, preflight, run_worker
from trainer import EpochResult, PretrainEpoch


def test_each_trial_keeps_its_pretraining_apart_from_its_epochs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = StudySpec.from_dict(
        {
            "study": {"name": "pre", "n_trials": 2, "seed": 0, "sampler": {"name": "random"}},
            "train": {
                "dataset": "digits",
                "hidden": [16, 8],
                "epochs": 2,
                "device": "cpu",
                "labels": 100,
            },
            "space": {
                "lr": {"low": 0.01, "high": 0.1, "log": True},
                "pretrain_epochs": {"choices": [0, 2]},
            },
        },
        source="test",
    ).replace(storage=url)
    created = create_or_resume(spec, open_storage(url))
    for epochs in (0, 2):  # one trial without pre-training, one with
        created.enqueue_trial({"lr": 0.05, "pretrain_epochs": epochs})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_worker("pre", url, options=WorkerOptions(flush_interval=0))
    finally:
        torch.set_num_threads(threads)
    study = optuna.load_study(study_name="pre", storage=url)
    assert sorted(t.params["pretrain_epochs"] for t in study.trials) == [0, 2]
    for trial in study.trials:
        attrs = TrialAttrs.of(trial)
        assert attrs.epochs_run == 2
        if trial.params["pretrain_epochs"] == 0:
            assert attrs.pretraining == ()
            continue
        layers = [(r.layer, r.epoch) for r in attrs.pretraining]
        assert layers == [
            ("fc1.weight", 0),
            ("fc1.weight", 1),
            ("fc2.weight", 0),
            ("fc2.weight", 1),
        ]
        assert {r.rows for r in attrs.pretraining} == {
            attrs.data["train"] + attrs.data["unlabeled"]
        }


def test_the_learning_curve_picture_has_a_pretraining_panel() -> None:
    epochs = [
        EpochResult(e, 1.0 / (e + 1), 0.5, 1.1 / (e + 1), 0.5, 0.1, {}, {}, 1.0) for e in range(3)
    ]
    records = [
        PretrainEpoch(f"fc{i}.weight", e, 0.5 / (e + 1), 100, 0.1) for i in (1, 2) for e in (0, 1)
    ]
    plain = plot_learning_curves(epochs)
    with_it = plot_learning_curves(epochs, pretraining=records)
    assert with_it[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(with_it[16:20], "big")
    assert width > int.from_bytes(plain[16:20], "big")  # the third panel widens the picture


def test_a_fold_trial_keeps_each_networks_pretraining(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = StudySpec.from_dict(
        {
            "study": {"name": "folds", "n_trials": 1, "seed": 0, "sampler": {"name": "random"}},
            "train": {
                "dataset": "digits",
                "hidden": [16, 8],
                "epochs": 1,
                "device": "cpu",
                "labels": 100,
                "folds": 2,
                "pretrain_epochs": 1,
            },
            "space": {"lr": {"low": 0.01, "high": 0.1, "log": True}},
        },
        source="test",
    ).replace(storage=url)
    create_or_resume(spec, open_storage(url))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_worker("folds", url, options=WorkerOptions(flush_interval=0))
    finally:
        torch.set_num_threads(threads)
    (trial,) = optuna.load_study(study_name="folds", storage=url).trials
    attrs = TrialAttrs.of(trial)
    assert [(r.member, r.layer) for r in attrs.pretraining] == [
        (m, layer) for m in (0, 1) for layer in ("fc1.weight", "fc2.weight")
    ]
    epochs = [EpochResult(0, 1.0, 0.5, 1.1, 0.5, 0.1, {}, {}, 1.0)]
    png = plot_learning_curves(epochs, pretraining=attrs.pretraining)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_pretraining_epoch_is_stored_as_it_ends() -> None:
    """The trial's `pretraining` attribute grows while it runs (the dashboard shows it)."""
    from studies.workers._objective import _keep_pretraining

    trial = optuna.create_study().ask()
    kept: list[PretrainEpoch] = []
    for epoch in (0, 1):
        _keep_pretraining(trial, kept, PretrainEpoch("fc1.weight", epoch, 0.5, 10, 0.1))
        assert TrialAttrs.of(trial).pretraining == tuple(kept)
    assert len(kept) == 2


def spec_with(**train: Any) -> StudySpec:
    return StudySpec.from_dict(
        {
            "study": {"name": "pre", "n_trials": 1},
            "train": {"dataset": "digits", "hidden": [16], "epochs": 1, **train},
            "space": {"lr": {"low": 0.01, "high": 0.1, "log": True}},
        },
        source="spec.toml",
    )


NOT_SEQUENTIAL = """
from torch import nn

class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.a, self.b = nn.Linear(64, 12), nn.Linear(12, num_classes)

    def forward(self, x):
        return self.b(self.a(x.flatten(1)).relu())

def build(input_shape, num_classes):
    return Net(num_classes)
"""


def test_a_factory_that_cannot_pretrain_fails_before_the_study_starts(tmp_path: Path) -> None:
    (tmp_path / "nets.py").write_text(NOT_SEQUENTIAL)
    spec = spec_with(model=str(tmp_path / "nets.py:build"), pretrain_epochs=2)
    with pytest.raises(SpecError, match=r"(?s)train\.model: .*pretrain_epochs: ") as caught:
        preflight(spec)
    assert "nn.Sequential" in str(caught.value) and "pretrain_epochs = 0" in str(caught.value)


def test_more_labels_than_rows_fail_before_the_study_starts() -> None:
    with pytest.raises(SpecError, match=r"train\.dataset: labels = 100000"):
        preflight(spec_with(labels=100_000))


def test_the_lr_range_command_says_it_tests_the_pretrained_network() -> None:
    from studies.workers._lr_auto import run_range_tests

    lines: list[str] = []
    spec = spec_with(pretrain_epochs=1, labels=100, hidden=[16, 8], device="cpu")
    found = run_range_tests(spec, steps=20, echo=lines.append)
    assert "pre-trains the sample's network first (pretrain_epochs = 1)" in lines[0]
    assert set(found) == {"sgd"}
