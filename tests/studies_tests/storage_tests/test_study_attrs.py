"""`StudyAttrs`: every study attribute by one name, stored and read back, old studies too."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from studies.spec import AblationTable, CellRow, LearningCurve, SizePoint, SpecError, StudySpec
from studies.storage import (
    Heartbeat,
    StudyAttrs,
    open_storage,
    storable_spec,
    store_heartbeat,
    stored_heartbeat,
    stored_spec,
    write_study_attrs,
)
from trainer import LRRange

SPEC: dict[str, Any] = {
    "study": {"name": "kept", "storage": "sqlite:///kept.db", "n_trials": 4, "seed": 1},
    "train": {"dataset": "digits", "hidden": [16], "epochs": 2},
    "space": {"lr": {"low": 1e-4, "high": 1.0, "log": True}},
}
CODE = {"model": {"ref": "models.py:mlp", "source": "/p/models.py", "sha256": "ab" * 32}}
# The stored forms the previous version wrote (`LRRange.to_dict()`, `{"factors", "rows"}` of
# `CellRow.to_dict()`, the learning curve's dict), spelt out so that a change of a record's
# `to_dict` cannot change them unnoticed.
LR_RANGE = {
    "adam": {
        "optimizer": "adam",
        "lrs": [1e-4, 1e-3, 1e-2],
        "losses": [2.0, 1.0, 3.0],
        "low": 1e-4,
        "high": 1e-2,
        "steepest": 1e-3,
        "minimum": 1e-3,
        "diverged_at": None,
    }
}
ABLATION = {
    "factors": ["init", "hidden"],
    "rows": [
        {
            "cell": ["he", [16]],
            "n": 2,
            "lost": 0,
            "mean": 0.5,
            "low": 0.4,
            "high": 0.6,
            "p_vs_best": None,
            "worse": False,
        },
        {
            "cell": ["xavier", [16]],
            "n": 1,
            "lost": 1,
            "mean": 0.7,
            "low": math.nan,
            "high": math.nan,
            "p_vs_best": math.nan,
            "worse": False,
        },
    ],
}
CURVE = {
    "trial": 3,
    "points": [
        {"fraction": 0.5, "examples": 100, "train": [0.1, 0.2], "dev": [0.3, 0.4]},
        {"fraction": 1.0, "examples": 200, "train": [0.1, 0.1], "dev": [0.2, 0.2]},
    ],
    "label": "good_fit",
    "numbers": {"final_gap": 0.1},
    "sentence": "fine",
}


def every_field() -> StudyAttrs:
    spec = StudySpec.from_dict(SPEC, source="the spec stored with 'kept'")
    return StudyAttrs(
        spec=spec,
        code=CODE,
        heartbeat=Heartbeat(interval=2, grace=9),
        lr_range={
            "adam": LRRange(
                "adam", (1e-4, 1e-3, 1e-2), (2.0, 1.0, 3.0), 1e-4, 1e-2, 1e-3, 1e-3, None
            )
        },
        fractions=(0.1111, 0.3333),
        ablation=AblationTable(
            ("init", "hidden"),
            (
                CellRow(("he", (16,)), 2, 0, 0.5, 0.4, 0.6, None, worse=False),
                CellRow(("xavier", (16,)), 1, 1, 0.7, math.nan, math.nan, math.nan, worse=False),
            ),
        ),
        learning_curve=LearningCurve(
            3,
            (
                SizePoint(0.5, 100, (0.1, 0.2), (0.3, 0.4)),
                SizePoint(1.0, 200, (0.1, 0.1), (0.2, 0.2)),
            ),
            "good_fit",
            {"final_gap": 0.1},
            "fine",
        ),
    )


def same(a: StudyAttrs, b: StudyAttrs) -> bool:
    """Equal, NaN counting as equal to NaN (an ablation cell of one run has no interval)."""
    return repr(a) == repr(b)


def new_study(tmp_path: Path) -> tuple[optuna.storages.RDBStorage, optuna.Study, int]:
    storage = open_storage(f"sqlite:///{tmp_path / 'a.db'}")
    study = optuna.create_study(storage=storage, study_name="kept")
    return storage, study, storage.get_study_id_from_name("kept")


def test_every_field_survives_the_round_trip_through_a_database(tmp_path: Path) -> None:
    storage, study, study_id = new_study(tmp_path)
    written = every_field()
    write_study_attrs(study, **{name: getattr(written, name) for name in StudyAttrs.names()})
    again = optuna.load_study(study_name="kept", storage=storage)
    assert same(StudyAttrs.of(again), written)
    assert same(StudyAttrs.read(storage, study_id), written)


def test_a_study_without_attributes_reads_as_the_defaults(tmp_path: Path) -> None:
    storage, study, study_id = new_study(tmp_path)
    assert StudyAttrs.of(study) == StudyAttrs() == StudyAttrs.read(storage, study_id)
    assert stored_heartbeat(storage, study_id) == (10, 60)


@pytest.mark.parametrize("name", StudyAttrs.names())
def test_each_key_is_hpstudy_and_the_field_name(name: str) -> None:
    assert StudyAttrs.key(name) == f"hpstudy_{name}"


def test_a_misspelt_field_is_refused(tmp_path: Path) -> None:
    _, study, _ = new_study(tmp_path)
    with pytest.raises(KeyError, match="'specs' is not a StudyAttrs field"):
        write_study_attrs(study, specs={})
    assert study.user_attrs == {}


def test_the_spec_is_kept_as_json_text_as_before(tmp_path: Path) -> None:
    # An earlier hpstudy, and `hpstudy status`, parse the stored spec with json.loads.
    _, study, _ = new_study(tmp_path)
    spec = StudySpec.from_dict(SPEC)
    write_study_attrs(study, spec=spec)
    assert json.loads(study.user_attrs["hpstudy_spec"]) == storable_spec(spec)


def test_a_study_written_by_the_previous_version_reads_back(tmp_path: Path) -> None:
    storage, study, study_id = new_study(tmp_path)
    spec = StudySpec.from_dict(SPEC)
    # The keys and forms the previous version wrote, set by hand.
    study.set_user_attr("hpstudy_spec", json.dumps(storable_spec(spec)))
    study.set_user_attr("hpstudy_code", CODE)
    study.set_user_attr("hpstudy_lr_range", LR_RANGE)
    study.set_user_attr("hpstudy_ablation", ABLATION)
    study.set_user_attr("hpstudy_learning_curve", CURVE)
    storage.set_study_system_attr(study_id, "hpstudy:heartbeat", {"interval": 2, "grace": 9})
    # fractions = "auto" came later: the previous version wrote none
    previous = dataclasses.replace(every_field(), fractions=None)
    assert same(StudyAttrs.read(storage, study_id), previous)
    assert stored_heartbeat(storage, study_id) == (2, 9)
    assert stored_spec(storage, "kept") == spec.replace(source="the spec stored with 'kept'")


def test_a_heartbeat_stored_now_outranks_the_old_key(tmp_path: Path) -> None:
    storage, _, study_id = new_study(tmp_path)
    storage.set_study_system_attr(study_id, "hpstudy:heartbeat", {"interval": 2, "grace": 9})
    store_heartbeat(storage, study_id, interval=5, grace=30)
    assert stored_heartbeat(storage, study_id) == (5, 30)
    assert storage.get_study_user_attrs(study_id)["hpstudy_heartbeat"] == {
        "interval": 5,
        "grace": 30,
    }


def test_a_heartbeat_round_trips_its_dict() -> None:
    heartbeat = Heartbeat(interval=3, grace=12)
    assert Heartbeat.from_dict(heartbeat.to_dict()) == heartbeat


@pytest.mark.parametrize(
    ("record", "stored"),
    [
        (AblationTable, ABLATION),
        (LearningCurve, CURVE),
        (CellRow, ABLATION["rows"][0]),
        (SizePoint, CURVE["points"][0]),
        (LRRange, LR_RANGE["adam"]),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_a_record_reads_the_stored_form_and_writes_it_again(record: Any, stored: Any) -> None:
    assert repr(record.from_dict(stored).to_dict()) == repr(stored)


def test_the_spec_is_read_back_with_the_storage_url_it_was_stored_with(tmp_path: Path) -> None:
    _, study, _ = new_study(tmp_path)
    spec = StudySpec.from_dict(SPEC).replace(storage="postgresql://u:secret@db.example/x")
    write_study_attrs(study, spec=spec)
    stored = StudyAttrs.of(study).spec
    assert stored is not None and stored.storage == "postgresql://u@db.example/x"
    assert stored.replace(storage=spec.storage, source=spec.source) == spec


def test_a_stored_spec_this_version_refuses_names_the_study(tmp_path: Path) -> None:
    _, study, _ = new_study(tmp_path)
    study.set_user_attr("hpstudy_spec", json.dumps({**SPEC, "study": {"name": "kept", "x": 1}}))
    with pytest.raises(SpecError, match="the spec stored with 'kept'"):
        StudyAttrs.of(study)


def test_reading_named_fields_skips_a_stored_spec_this_version_refuses(tmp_path: Path) -> None:
    storage, study, study_id = new_study(tmp_path)
    study.set_user_attr("hpstudy_spec", json.dumps({**SPEC, "study": {"name": "kept", "x": 1}}))
    write_study_attrs(study, heartbeat=Heartbeat(5, 30))
    assert StudyAttrs.read(storage, study_id, "heartbeat").heartbeat == Heartbeat(5, 30)
    assert StudyAttrs.of(study, "heartbeat").spec is None  # not read, so not refused


def test_reading_a_misspelt_field_by_name_is_refused(tmp_path: Path) -> None:
    _, study, _ = new_study(tmp_path)
    with pytest.raises(KeyError, match="heartbeet"):
        StudyAttrs.of(study, "heartbeet")
