"""The surrogate: encoding, shapes, noise, and held-out accuracy on a known function."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from sklearn.ensemble import RandomForestRegressor

from benchmarks.hpobench import surrogate
from benchmarks.hpobench.record import default_path, draw, write
from benchmarks.hpobench.surrogate import (
    MODELS,
    CurveModel,
    Curves,
    Encoder,
    FlatForest,
    ModelChoice,
    SurrogateTask,
    model_choice_path,
    noise_check,
    validate,
)
from search_space import SearchSpace

SPACE = {
    "lr": {"low": 1e-4, "high": 1.0, "log": True},
    "optimizer": {"choices": ["sgd", "adam"]},
    "momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}},
    "batch_norm": {"choices": [False, True]},
}
EPOCHS = 6


def _known(params: dict, rng: np.random.Generator) -> list[float]:
    """A curve whose final loss is smallest at lr 1e-2, better with adam and batch norm."""
    distance = abs(math.log10(params["lr"]) + 2.0)
    final = 0.05 + 0.2 * distance + 0.05 * (params["optimizer"] == "sgd")
    final += 0.03 * (not params["batch_norm"]) + 0.02 * params.get("momentum", 0.0)
    return [final * (1 + 2 * math.exp(-e)) * math.exp(rng.normal(0, 0.02)) for e in range(EPOCHS)]


def _recording(path: Path, count: int, *, noise_seed: int = 0) -> None:
    rng = np.random.default_rng(noise_seed)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = SearchSpace.from_dict(SPACE)
    from search_space import suggest

    records = []
    for index in range(count):
        params = suggest(study.ask(), space)
        epochs = [
            {"epoch": e, "dev_loss": loss, "seconds": 1.0 + params["batch_norm"]}
            for e, loss in enumerate(_known(params, rng))
        ]
        if index == 0:  # diverged after two epochs
            epochs = [*epochs[:1], {"epoch": 1, "dev_loss": "nan", "seconds": 1.0}]
        status = "diverged" if index == 0 else "completed"
        records.append({"index": index, "params": params, "status": status, "epochs": epochs})
    meta = {
        "kind": "meta",
        "spec": "known",
        "space": SPACE,
        "train": {"epochs": EPOCHS, "dataset": "digits"},
    }
    write(path, meta, records)


def test_an_absent_conditional_parameter_sets_its_flag() -> None:
    encoder = Encoder(SearchSpace.from_dict(SPACE))
    with_momentum = encoder.row(
        {"lr": 1e-2, "optimizer": "sgd", "momentum": 0.9, "batch_norm": True}
    )
    without = encoder.row({"lr": 1e-2, "optimizer": "adam", "batch_norm": False})

    flag = encoder.columns.index("momentum absent")
    assert (with_momentum[flag], without[flag]) == (0.0, 1.0)
    assert with_momentum[encoder.columns.index("lr")] == 0.5  # log scale: 1e-2 is halfway
    assert without[encoder.columns.index("batch_norm=false")] == 1.0


def test_a_diverged_run_counts_as_guessing_from_its_divergence_on(tmp_path: Path) -> None:
    _recording(tmp_path / "known.jsonl.gz", 20)
    curves = Curves.load(tmp_path / "known.jsonl.gz")

    assert curves.dev_loss.shape == (20, EPOCHS)
    assert curves.diverged[0] and not curves.diverged[1:].any()
    assert np.all(curves.dev_loss[0, 1:] >= math.log(10))


def test_held_out_ranks_of_a_known_function_agree(tmp_path: Path) -> None:
    _recording(tmp_path / "known.jsonl.gz", 150)
    curves = Curves.load(tmp_path / "known.jsonl.gz")

    for model in ("forest", "knn"):
        checked = validate(curves, model=model, folds=3)
        assert checked.spearman_final >= 0.8, checked.line()
        assert checked.spearman_best >= 0.8, checked.line()


def test_the_task_samples_its_space_and_gives_whole_curves(tmp_path: Path) -> None:
    _recording(tmp_path / "known.jsonl.gz", 40)
    task = SurrogateTask.load(tmp_path / "known.jsonl.gz")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    params = task.suggest(study.ask())

    mean = task.curve(params)
    assert mean.shape == (EPOCHS,) and np.all(mean > 0)
    assert np.array_equal(task.curve(params), mean)  # the mean repeats
    assert task.seconds(params).shape == (EPOCHS,)
    losses, seconds = task.curves_of([params, params])
    assert losses.shape == seconds.shape == (2, EPOCHS)


def test_noisy_draws_of_one_configuration_differ(tmp_path: Path) -> None:
    _recording(tmp_path / "known.jsonl.gz", 40)
    task = SurrogateTask.load(tmp_path / "known.jsonl.gz")
    params = {"lr": 1e-2, "optimizer": "adam", "batch_norm": True}
    rng = np.random.default_rng(0)

    draws = np.array([task.curve(params, rng=rng) for _ in range(10)])

    assert len({tuple(d) for d in draws}) > 1
    assert np.all(np.abs(np.log(draws) - np.log(task.curve(params))) < 1.0)


def test_the_model_refuses_an_unknown_choice() -> None:
    model = CurveModel(SearchSpace.from_dict(SPACE))
    try:
        model.encoder.row({"lr": 1e-2, "optimizer": "lamb", "batch_norm": True})
    except ValueError as exc:
        assert "lamb" in str(exc)
    else:
        raise AssertionError("an unknown choice was encoded")


def test_reruns_measure_the_noise_the_curves_were_made_with(tmp_path: Path) -> None:
    _recording(tmp_path / "a.jsonl.gz", 60, noise_seed=0)
    _recording(tmp_path / "b.jsonl.gz", 60, noise_seed=1)  # same configurations, other noise

    checked = noise_check(
        Curves.load(tmp_path / "a.jsonl.gz"), Curves.load(tmp_path / "b.jsonl.gz")
    )

    assert checked.configs == 59  # the first diverged in both
    assert 0.01 < checked.rerun_sd < 0.04  # made with sd 0.02


def test_the_flat_forest_predicts_what_scikit_learn_does(tmp_path: Path) -> None:
    _recording(tmp_path / "known.jsonl.gz", 60)
    curves = Curves.load(tmp_path / "known.jsonl.gz")
    x = np.random.default_rng(0).uniform(size=(30, len(Encoder(curves.space).columns)))
    forest = RandomForestRegressor(n_estimators=20, random_state=0)
    forest.fit(Encoder(curves.space).matrix(curves.params), np.log(curves.dev_loss))

    assert np.array_equal(FlatForest(forest).predict(x), forest.predict(x))


def test_draws_with_reruns_beside_differ_as_the_reruns_do(tmp_path: Path) -> None:
    _recording(tmp_path / "known.jsonl.gz", 60, noise_seed=0)
    _recording(tmp_path / "known-reruns.jsonl.gz", 60, noise_seed=1)
    task = SurrogateTask.load(tmp_path / "known.jsonl.gz")
    params = {"lr": 1e-2, "optimizer": "adam", "batch_norm": True}
    rng = np.random.default_rng(0)

    finals = [task.curve(params, rng=rng)[-1] for _ in range(200)]

    assert 0.01 < np.std(np.log(finals)) < 0.04  # the recordings' noise: sd 0.02


def test_the_target_is_a_quantile_of_the_surrogates_own_draws(tmp_path: Path) -> None:
    _recording(tmp_path / "known.jsonl.gz", 60)
    task = SurrogateTask.load(tmp_path / "known.jsonl.gz")

    top5, median = task.target(0.95, draws=400), task.target(0.5, draws=400)
    drawn = task.curves_of(draw(task.space, 400, seed=1))[0].min(axis=1)

    assert top5 < median
    assert task.target(0.95, noisy=False, draws=400) == pytest.approx(np.quantile(drawn, 0.05))


def _inner_recording(path: Path, count: int, *, noise_seed: int = 0) -> None:
    """The first epoch's points of `_recording`'s configurations: at 1/9 and 1/3 of it, the
    loss 3 and 2 times the first epoch's; seconds = 2 * share + 0.1 per evaluation."""
    rng = np.random.default_rng(noise_seed)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = SearchSpace.from_dict(SPACE)
    from search_space import suggest

    records = []
    for index in range(count):
        params = suggest(study.ask(), space)
        first = _known(params, rng)[0]
        epochs = [
            {"epoch": 0, "dev_loss": 3 * first, "fraction": 1 / 9, "seconds": 2 / 9 + 0.1},
            {"epoch": 0, "dev_loss": 2 * first, "fraction": 1 / 3, "seconds": 2 / 3 + 0.2},
            {"epoch": 0, "dev_loss": first, "fraction": 1.0, "seconds": 2.0 + 0.3},
        ]
        records.append({"index": index, "params": params, "status": "completed", "epochs": epochs})
    meta = {
        "kind": "meta",
        "spec": "known",
        "space": SPACE,
        "train": {"epochs": 1, "dataset": "digits", "fractions": [1 / 9, 1 / 3]},
    }
    write(path, meta, records)


def test_inner_points_come_before_the_epochs_and_cost_their_share_and_an_evaluation(
    tmp_path: Path,
) -> None:
    _recording(tmp_path / "known.jsonl.gz", 80)
    _inner_recording(tmp_path / "known-fractions.jsonl.gz", 80)
    task = SurrogateTask.load(tmp_path / "known.jsonl.gz")
    params = {"lr": 1e-2, "optimizer": "adam", "batch_norm": True}

    points = task.points(params)

    assert task.fractions == pytest.approx((1 / 9, 1 / 3))
    assert task.eval_cost == pytest.approx(0.1 / 2)  # 0.1 s per evaluation, 2 s per epoch
    assert points.shape == (2 + EPOCHS,)
    assert np.allclose(points[2:], task.curve(params))  # the epoch model is unchanged
    assert points[0] > points[1] > points[2]  # 3x, 2x, 1x the first epoch's loss
    noisy = np.array([task.points(params, rng=np.random.default_rng(i)) for i in range(50)])
    assert np.std(np.log(noisy[:, 0])) > 0  # inner points are drawn with noise too


def test_a_task_without_inner_points_says_how_to_record_them(tmp_path: Path) -> None:
    _recording(tmp_path / "known.jsonl.gz", 30)
    task = SurrogateTask.load(tmp_path / "known.jsonl.gz")

    with pytest.raises(ValueError, match="--fractions"):
        task.points({"lr": 1e-2, "optimizer": "adam", "batch_norm": True})


def _no_choosing(curves: Curves, *, folds: int = 5) -> ModelChoice:
    raise AssertionError("the model was chosen again: the kept choice should have been read")


def test_the_model_choice_is_kept_beside_the_recording_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "known.jsonl.gz"
    _recording(path, 40)
    chosen = SurrogateTask.load(path).model_name

    kept = ModelChoice.from_dict(json.loads(model_choice_path(path).read_text()))
    assert model_choice_path(path) == tmp_path / "known-model.json"
    assert (kept.model, kept.configs, kept.folds) == (chosen, 40, 5)
    assert set(kept.spearman_final) == set(MODELS)
    assert kept.fingerprint == Curves.load(path).fingerprint()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    monkeypatch.setattr(surrogate, "choose_model", _no_choosing)
    assert SurrogateTask.load(path).model_name == chosen


def test_a_changed_recording_has_its_model_chosen_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "known.jsonl.gz"
    _recording(path, 40)
    SurrogateTask.load(path)
    before = json.loads(model_choice_path(path).read_text())
    _recording(path, 41)  # one configuration more
    choose = surrogate.choose_model
    calls: list[int] = []

    def counted(curves: Curves, *, folds: int = 5) -> ModelChoice:
        calls.append(len(curves.params))
        return choose(curves, folds=folds)

    monkeypatch.setattr(surrogate, "choose_model", counted)
    SurrogateTask.load(path)
    SurrogateTask.load(path)  # the new choice is kept in turn

    after = json.loads(model_choice_path(path).read_text())
    assert calls == [41]
    assert after["configs"] == 41 and after["fingerprint"] != before["fingerprint"]


def test_a_kept_file_that_is_not_a_choice_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "known.jsonl.gz"
    _recording(path, 40)
    model_choice_path(path).write_text('{"model": "knn"')  # cut short

    task = SurrogateTask.load(path)

    assert json.loads(model_choice_path(path).read_text())["model"] == task.model_name


@pytest.mark.parametrize("spec", ["digits-mlp", "mnist-mlp"])
def test_the_committed_model_choices_are_of_the_recordings_as_they_are(spec: str) -> None:
    """Else every simulation would choose again, and rewrite a tracked file."""
    path = default_path(spec)
    kept = ModelChoice.from_dict(json.loads(model_choice_path(path).read_text()))
    assert kept.fingerprint == Curves.load(path).fingerprint()
    assert kept.model in MODELS
