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
from studies.storage import create_engine, open_storage
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
    engine = create_engine(kept.storage)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT trial FROM hpstudy_weights").all()
    engine.dispose()
    assert sorted(r[0] for r in rows) == sorted(t.number for t in ranked[:2])


def test_the_dashboard_lists_the_kept_weights_only(kept: studies.StudySpec) -> None:
    storage = open_storage(kept.storage)
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
    assert about.weights is not None and about.weights["file"] == str(tmp_path / "best.pt")
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


# Scoring kept weights and starting from them ------------------------------------------------


def test_train_scores_exported_weights_without_training(
    kept: studies.StudySpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from studies.cli import main

    config, weights = tmp_path / "best.toml", tmp_path / "best.pt"
    assert (
        main(
            [
                "export",
                "kept",
                "--storage",
                kept.storage,
                "-o",
                str(config),
                "--weights",
                str(weights),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["train", str(config), "--weights", str(weights), "--test"]) == 0
    out = capsys.readouterr().out
    assert "not trained" in out and "epoch" not in out
    study = optuna.load_study(study_name="kept", storage=kept.storage)
    assert f"dev loss {study.best_value:.4f}" in out
    assert "test accuracy" in out


def test_weights_of_another_network_are_refused_naming_the_layer(
    kept: studies.StudySpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from studies.cli import main

    config, weights = tmp_path / "best.toml", tmp_path / "best.pt"
    export_best("kept", url=kept.storage, output=config, weights=weights)
    code = main(["train", str(config), "--set", "hidden=[8]", "--weights", str(weights)])
    assert code == 2
    err = capsys.readouterr().err
    assert "do not fit this config's network" in err
    assert "fc1.weight: (16, 64) in best.pt, (8, 64)" in err


def test_a_study_starts_from_another_studys_kept_weights(
    kept: studies.StudySpec, tmp_path: Path
) -> None:
    source = optuna.load_study(study_name="kept", storage=kept.storage).best_trial.number
    path = tmp_path / "transfer.toml"
    text = textwrap.dedent(SPEC.format(db=tmp_path / "t.db", keep=1))
    text = text.replace('name = "kept"', 'name = "transferred"').replace(
        "n_trials = 6", "n_trials = 2"
    )
    text = text.replace(
        "epochs = 3", f'epochs = 2\ninit_from = "kept@{kept.storage}#{source}"\nfreeze = 1'
    )
    path.write_text(text)
    spec = studies.spec_of(path)
    prepare_study(spec, echo=lambda _: None, code=studies.workers.preflight(spec))
    run_worker(spec.name, spec.storage, options=WorkerOptions(flush_interval=0))
    study = optuna.load_study(study_name="transferred", storage=spec.storage)
    for trial in study.trials:
        transfer = trial.user_attrs["transfer"]
        assert transfer["study"]["trial"] == source and transfer["study"]["study"] == "kept"
        assert set(transfer["loaded"]) >= {"fc1.weight", "out.weight"}
        assert transfer["frozen"] == ["fc1.weight", "fc1.bias"]
    _, about = export_best("transferred", url=spec.storage, output=tmp_path / "t.toml")
    assert about.transfer is not None and about.transfer["study"]["trial"] == source


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("freeze = 5", "train.freeze: freeze = 5 leaves no weight layer to train"),
        ('init_from = "kept@{url}#999"', "train.init_from: init_from kept@"),
        ('init_from = "elsewhere.pt"', "train.init_from: no such weights file"),
    ],
)
def test_bad_transfer_settings_are_refused_before_the_study(
    kept: studies.StudySpec, tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    text = textwrap.dedent(SPEC.format(db=tmp_path / "b.db", keep=1))
    path.write_text(text.replace("epochs = 3", f"epochs = 1\n{line.format(url=kept.storage)}"))
    with pytest.raises(studies.SpecError, match=message):
        studies.run(path, progress=False)
    assert not (tmp_path / "b.db").exists() or not optuna.get_all_study_summaries(
        open_storage(f"sqlite:///{tmp_path / 'b.db'}")
    )
