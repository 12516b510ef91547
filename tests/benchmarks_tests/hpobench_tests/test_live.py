"""The live confirmation: its measures of a run's epochs, top-k's batches, and real short runs."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import optuna
import pytest

from benchmarks.hpobench.live import (
    PEERS,
    LiveRun,
    main,
    read,
    summarise,
    summary,
    target_of,
)
from benchmarks.hpobench.live_topk import Config, Shared
from benchmarks.hpobench.record import default_path, load
from benchmarks.time_to_target import epochs_in_db
from studies.storage import TrialAttrs

START = 1000.0


def point(seconds: float, loss: float | None, trial: int = 0) -> dict[str, object]:
    return {
        "time": START + seconds,
        "trial": trial,
        "epoch": 0,
        "dev_loss": loss,
        "dev_accuracy": 0.5,
    }


def test_epochs_to_target_count_the_epochs_finished_by_then_in_time_order() -> None:
    points = [point(30, 0.4, 1), point(10, 0.9), point(20, float("nan")), point(40, 0.2, 1)]
    found = summarise(points, start=START, budget=100, target=0.3)
    assert found["epochs"] == 4
    assert (found["epochs_to_target"], found["seconds_to_target"]) == (4, 40)
    assert [loss for _, _, loss in found["curve"]] == [0.9, 0.4, 0.2]


def test_the_anytime_best_is_read_at_a_quarter_half_and_all_of_the_budget() -> None:
    points = [point(10, 0.9), point(30, 0.5), point(60, 0.3)]
    found = summarise(points, start=START, budget=100, target=0.1)
    assert found["best"] == {"0.25": 0.9, "0.5": 0.5, "1.0": 0.3}
    assert found["epochs_to_target"] is None and found["seconds_to_target"] is None


def test_epochs_after_the_budget_do_not_count() -> None:
    found = summarise([point(10, 0.9), point(120, 0.1)], start=START, budget=100, target=0.2)
    assert found["epochs"] == 1
    assert found["seconds_to_target"] is None
    assert found["best"]["1.0"] == 0.9


def test_the_target_is_the_5th_percentile_of_the_recorded_best_dev_losses() -> None:
    _, records = load(default_path("digits-mlp"))
    bests = np.array(
        [
            min(
                (e["dev_loss"] for e in r["epochs"] if isinstance(e["dev_loss"], float)),
                default=math.inf,
            )
            for r in records
        ]
    )
    target = target_of("digits-mlp")
    assert np.mean(bests <= target) == pytest.approx(0.05, abs=0.01)


def test_top_k_queues_the_best_k_of_a_full_batch_and_drops_the_rest() -> None:
    state = Shared([Config(i, {"lr": i}, seed=i) for i in range(5)])
    losses = [0.5, 0.1, 0.9, 0.3]
    dropped = [
        state.finish_first(state.configs[i], loss, n=4, k=2) for i, loss in enumerate(losses)
    ]
    assert dropped[:3] == [[], [], []]
    assert sorted(c.id for c in dropped[3]) == [0, 2]
    assert [c.fate for c in state.configs] == ["dropped", "queued", "dropped", "queued", "first"]
    assert state.queued() is not None and state.queued().id == 1  # type: ignore[union-attr]
    # the next batch starts empty
    assert state.finish_first(state.configs[4], 0.2, n=4, k=2) == []
    assert [c.id for c in state.waiting()] == [4]


def test_the_summary_gives_each_side_its_median_and_each_seed() -> None:
    def run(seed: int, seconds: float | None) -> LiveRun:
        return LiveRun(
            side="top-k",
            seed=seed,
            spec="digits-mlp",
            budget_seconds=60,
            target=0.1,
            epochs=10,
            epochs_to_target=None if seconds is None else 5,
            seconds_to_target=seconds,
            best={"0.25": 0.3, "0.5": 0.2, "1.0": 0.1},
            trials=4,
            pruned=2,
            curve=[],
            points=[],
            load_before=0.0,
        )

    table = summary([run(1, 30.0), run(2, None), run(3, 10.0)])
    assert "| top-k | 1, 2, 3 | 5 (5, -, 5) | 30 (30, -, 10) |" in table
    # a top-k run names its n and k
    named = dataclasses.replace(run(4, 20.0), settings={"n": 20, "k": 5})
    assert "| top-k (20, 5) | 4 | 5 (5) | 20 (20) |" in summary([named])


def check_run(run: LiveRun, side: str) -> None:
    """What every short live run on digits with an easy target must have recorded."""
    assert (run.side, run.seed, run.spec) == (side, 7, "digits-mlp")
    assert run.epochs > 0 and len(run.points) == run.epochs
    assert run.curve and run.best["1.0"] == run.curve[-1][2]
    assert run.seconds_to_target is not None and run.epochs_to_target is not None
    assert run.trials >= 1


# hpstudy's own side runs in the priors test below (as the earlier study)
@pytest.mark.slow
@pytest.mark.parametrize("side", [s for s in PEERS if s != "hpstudy"])
def test_a_short_live_run_records_its_epochs_and_reaches_an_easy_target(side, tmp_path) -> None:
    if side == "ray-tune":
        pytest.importorskip("ray.tune")
    out = tmp_path / "live.json"
    # 25 s of each side on digits, 120 s of Ray's (its start-up counts in the budget and took
    # 35 s on the loaded test machine); a dev loss of 2.5 is what a first epoch of almost any
    # configuration reaches (chance is about 2.3)
    budget = "120" if side == "ray-tune" else "25"
    argv = ["--spec", "digits-mlp", "--sides", side, "--seeds", "7", "--budget", budget]
    argv += ["--target", "2.5", "--n", "3", "--k", "1", "--out", str(out), "--work", str(tmp_path)]
    main(argv)
    [run] = read(out)
    check_run(run, side)
    main(argv)  # done: skipped, not run again
    assert json.loads(out.read_text())[0]["points"] == run.to_dict()["points"]
    assert len(read(out)) == 1


def test_priors_side_without_an_earlier_study_is_refused_in_the_flags_words(
    tmp_path, capsys
) -> None:
    argv = ["--spec", "digits-mlp", "--sides", "hpstudy+priors", "--target", "1"]
    with pytest.raises(SystemExit):
        main([*argv, "--out", str(tmp_path / "o.json")])
    assert "--sides hpstudy+priors needs --priors-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "--priors-from", str(tmp_path / "{seed}.db"), "--seeds", "3", "4"])
    err = capsys.readouterr().err
    assert "no such file for seeds 3, 4" in err and "run the earlier study first" in err


@pytest.mark.slow
def test_the_priors_side_starts_from_the_earlier_study_and_counts_only_its_own(tmp_path) -> None:
    out = tmp_path / "live.json"
    # 45 s: in 25 the earlier study may finish too few trials to give priors (seen under load)
    common = ["--spec", "digits-mlp", "--seeds", "7", "--budget", "45", "--target", "2.5"]
    common += ["--out", str(out), "--work", str(tmp_path)]
    main([*common, "--sides", "hpstudy"])
    earlier = tmp_path / "hpstudy-7" / "study.db"
    main(
        [
            *common,
            "--sides",
            "hpstudy+priors",
            "--priors-from",
            str(tmp_path / "hpstudy-{seed}" / "study.db"),
        ]
    )
    first, run = read(out)
    assert run.side == "hpstudy+priors" and run.settings == {"priors_from": str(earlier)}
    storage = f"sqlite:///{tmp_path / 'hpstudy+priors-7' / 'study.db'}"
    new = optuna.load_study(study_name="hpstudy+priors", storage=storage)
    old = optuna.load_study(study_name="hpstudy", storage=storage)
    check_run(first, "hpstudy")
    check_run(run, "hpstudy+priors")
    assert any(t.state.name == "COMPLETE" for t in old.trials)
    # the new study's first trial is one of the earlier study's best, naming its source
    first_new = min(new.trials, key=lambda t: t.number)
    assert TrialAttrs.of(first_new).prior["study"] == "hpstudy"  # type: ignore[index]
    # only the new study's epochs count, though the file holds the earlier study's too
    own = epochs_in_db(tmp_path / "hpstudy+priors-7" / "study.db", study="hpstudy+priors")
    every = epochs_in_db(tmp_path / "hpstudy+priors-7" / "study.db")
    assert 0 < run.epochs <= len(own) < len(every)
    assert {p["trial"] for p in run.points} <= {t.number for t in new.trials}
