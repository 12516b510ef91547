"""`Provenance`: an exported config's `[provenance]` table as one record, old files too."""

from __future__ import annotations

import tomllib
from pathlib import Path

from studies.storage import Provenance
from trainer import TrainConfig, read_config_file

FULL = Provenance(
    study="s",
    trial=3,
    state="complete",
    metric="dev_loss",
    direction="minimize",
    value=0.25,
    objectives={"dev_loss": 0.25, "params": 1200.0},
    measured={"params": 1200.0},
    seed=7,
    torch_threads=2,
    best_epoch=4,
    epochs_run=6,
    stop_reason="completed",
    diagnosis=("good_fit",),
    storage="sqlite:///s.db",
    exported="2026-01-01T00:00:00+00:00",
    versions={"python": "3.12.0"},
    data={"dataset": "digits", "fingerprint": "ab" * 8},
    model={"ref": "models.py:mlp", "source": "/p/models.py", "sha256": "cd" * 32},
    transfer={"init_from": "other@sqlite:///o.db"},
    folder="/p",
    folds={"folds": 3, "best_epochs": [2, -1, 3], "refit_epochs": 3},
    weights={"file": "best.pt", "sha256": "ef" * 32},
)


def test_the_record_round_trips_its_dict() -> None:
    assert Provenance.from_dict(FULL.to_dict()) == FULL


def test_it_round_trips_through_an_exported_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "best.toml"
    TrainConfig(dataset="digits").save(path, extra={"provenance": FULL.to_dict()})
    assert Provenance.from_dict(read_config_file(path)["provenance"]) == FULL


def test_unset_fields_are_left_out_since_toml_has_no_null() -> None:
    assert Provenance(study="s", trial=0).to_dict() == {"study": "s", "trial": 0, "diagnosis": []}


def test_a_file_without_provenance_reads_as_an_empty_record() -> None:
    assert Provenance.from_dict({}) == Provenance()


def test_a_table_written_by_the_previous_version_reads_back() -> None:
    # the keys and forms `hpstudy export` wrote before the record existed, set by hand
    table = tomllib.loads(
        """
        study = "s"
        trial = 3
        value = 0.25
        seed = 7
        torch_threads = 2
        diagnosis = ["good_fit"]
        folder = "/p"
        [model]
        ref = "models.py:mlp"
        source = "/p/models.py"
        sha256 = "cd"
        """
    )
    about = Provenance.from_dict(table)
    assert (about.study, about.trial, about.value, about.torch_threads) == ("s", 3, 0.25, 2)
    assert about.diagnosis == ("good_fit",) and about.folder == "/p"
    assert about.model == {"ref": "models.py:mlp", "source": "/p/models.py", "sha256": "cd"}


def test_a_key_a_newer_version_wrote_is_kept_and_written_again() -> None:
    about = Provenance.from_dict({"study": "s", "gpu": "H100"})
    assert about.study == "s" and about.extra == {"gpu": "H100"}
    assert about.to_dict()["gpu"] == "H100"
