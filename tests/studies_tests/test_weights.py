"""The best trials' trained weights: kept in the study database, bounded, exported."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import optuna
import pytest
import torch

import studies
from studies import StudyError
from studies.results import export_best, trial_config
from studies.workers import WorkerOptions, prepare_study, run_worker
from trainer import build_model, evaluate, load_data

SPEC = """\
[study]
name = "kept"
storage = "sqlite:///{db}"
n_trials = 6
seed = 0
sampler = {{ name = "random" }}
pruner = "none"
keep_weights = {keep}

[train]
dataset = "digits"
hidden = [16]
epochs = 3
dev_fraction = 0.2
device = "cpu"

[space.lr]
low = 1e-3
high = 0.3
log = true
"""


def run(folder: Path, keep: int) -> studies.StudySpec:
    path = folder / "kept.toml"
    path.write_text(textwrap.dedent(SPEC.format(db=folder / "s.db", keep=keep)))
    spec = studies.spec_of(path)
    prepare_study(spec, echo=lambda _: None)
    run_worker(spec.name, spec.storage, options=WorkerOptions(flush_interval=0))
    return spec


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> studies.StudySpec:
    return run(tmp_path_factory.mktemp("kept"), keep=2)


def test_only_the_best_trials_keep_their_weights(kept: studies.StudySpec) -> None:
    study = optuna.load_study(study_name="kept", storage=kept.storage)
    ranked = sorted(study.trials, key=lambda t: t.value)
    engine = studies.create_engine(kept.storage)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT trial FROM hpstudy_weights").all()
    engine.dispose()
    assert sorted(r[0] for r in rows) == sorted(t.number for t in ranked[:2])


def test_the_dashboard_lists_the_kept_weights_only(kept: studies.StudySpec) -> None:
    storage = studies.open_storage(kept.storage)
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name("kept"))
    metas = [json.loads(v) for k, v in attrs.items() if k.startswith("artifacts:")]
    listed = sorted(m["filename"] for m in metas if m is not None)
    study = optuna.load_study(study_name="kept", storage=kept.storage)
    best_two = sorted(study.trials, key=lambda t: t.value)[:2]
    assert listed == sorted(f"weights-trial-{t.number}.pt" for t in best_two)


def test_exported_weights_score_exactly_what_the_trial_reported(
    kept: studies.StudySpec, tmp_path: Path
) -> None:
    _, about = export_best(
        "kept", url=kept.storage, output=tmp_path / "best.toml", weights=tmp_path / "best.pt"
    )
    assert about["weights"]["file"] == str(tmp_path / "best.pt")
    study = optuna.load_study(study_name="kept", storage=kept.storage)
    config = trial_config(study.best_trial)
    data = load_data(config)
    model = build_model(config, data.input_shape, data.num_classes)
    model.load_state_dict(torch.load(tmp_path / "best.pt", weights_only=True))
    scored = evaluate(model, data.x_dev, data.y_dev)
    assert scored.loss == pytest.approx(study.best_value, rel=1e-5)


def test_a_trial_whose_weights_were_dropped_says_which_are_kept(
    kept: studies.StudySpec, tmp_path: Path
) -> None:
    study = optuna.load_study(study_name="kept", storage=kept.storage)
    worst = max(study.trials, key=lambda t: t.value)
    with pytest.raises(StudyError, match=f"trial {worst.number} has no kept weights"):
        export_best(
            "kept",
            url=kept.storage,
            output=tmp_path / "w.toml",
            number=worst.number,
            weights=tmp_path / "w.pt",
        )
    assert not (tmp_path / "w.toml").exists()


def test_keep_weights_zero_keeps_none(tmp_path: Path) -> None:
    spec = run(tmp_path, keep=0)
    with pytest.raises(StudyError, match="kept now: none"):
        export_best("kept", url=spec.storage, output=tmp_path / "b.toml", weights=tmp_path / "b.pt")
