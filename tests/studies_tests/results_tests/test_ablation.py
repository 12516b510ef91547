"""`hpstudy ablate`: every cell of a few factors with the same seeds, a table with intervals."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
from scipy import stats

import studies
from studies.analysis import ablation_table, holm, mean_interval
from studies.cli import main
from studies.spec import REPEAT
from studies.storage import StudyAttrs
from studies.workers._ablate import ablation_spec

# The statistics ------------------------------------------------------------------------------


def test_the_interval_is_students_t() -> None:
    values = [0.90, 0.92, 0.95, 0.91, 0.93]
    mean, low, high = mean_interval(values)
    reference = stats.t.interval(0.95, 4, loc=mean, scale=stats.sem(values))
    assert mean == pytest.approx(0.922)
    assert (low, high) == pytest.approx(reference)


def test_holm_adjusts_in_steps_and_stays_monotone() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_a_cell_worse_for_every_seed_is_flagged_and_noise_is_not() -> None:
    runs = {
        ("he", "relu"): {0: 0.95, 1: 0.96, 2: 0.94, 3: 0.955, 4: 0.945},
        ("glorot", "relu"): {0: 0.90, 1: 0.915, 2: 0.89, 3: 0.905, 4: 0.9},  # always ~5 worse
        ("lecun", "relu"): {0: 0.955, 1: 0.95, 2: 0.945, 3: 0.95, 4: 0.95},  # noise
    }
    rows = ablation_table(runs, maximize=True)
    assert [r.cell for r in rows] == [("he", "relu"), ("lecun", "relu"), ("glorot", "relu")]
    assert rows[0].p_vs_best is None and not rows[0].worse
    assert not rows[1].worse and rows[1].p_vs_best > 0.05
    assert rows[2].worse and rows[2].p_vs_best < 0.05


def test_diverged_runs_are_counted_not_averaged() -> None:
    runs = {("a",): {0: 0.5, 1: 0.6}, ("b",): {0: math.nan, 1: 0.4}, ("c",): {0: math.nan}}
    rows = {row.cell: row for row in ablation_table(runs, maximize=True)}
    assert (rows[("b",)].n, rows[("b",)].lost, rows[("b",)].mean) == (1, 1, 0.4)
    assert math.isnan(rows[("b",)].p_vs_best)  # one shared seed: nothing to test with
    assert rows[("c",)].n == 0 and rows[("c",)].lost == 1 and math.isnan(rows[("c",)].mean)


# The study -----------------------------------------------------------------------------------

SPEC = """\
[study]
name = "abl"
storage = "sqlite:///{db}"
metric = "dev_accuracy"
n_trials = 10
seed = 0

[train]
dataset = "digits"
hidden = [16]
epochs = 2
dev_fraction = 0.2
optimizer = "adam"
lr = 0.01
device = "cpu"

[space.init]
choices = ["he_normal", "lecun_normal"]

[space.activation]
choices = ["relu", "tanh", "sigmoid"]

[space.batch_norm]
choices = [true]

[space.lr]
low = 0.001
high = 0.1
"""


def write(folder: Path) -> Path:
    path = folder / "abl.toml"
    path.write_text(textwrap.dedent(SPEC.format(db=folder / "s.db")))
    return path


def test_the_ablation_study_queues_every_cell_and_seed_once(tmp_path: Path) -> None:
    spec = ablation_spec(studies.spec_of(write(tmp_path)), ["init", "activation"], 3)
    assert spec.name == "abl-ablation"
    assert spec.n_trials == 2 * 3 * 3
    assert set(spec.space) == {"init", "activation", REPEAT}  # lr is the [train] base's
    assert len(spec.enqueue) == 18 and len({tuple(p.items()) for p in spec.enqueue}) == 18


@pytest.mark.parametrize(
    ("factors", "repeats", "message"),
    [
        (["optimiser"], 3, "'optimiser' is not a categorical parameter"),
        (["batch_norm"], 3, "'batch_norm' has one value"),
        (["lr"], 3, "'lr' is not a categorical parameter"),
        (["init"], 1, "at least 2 seeds per cell"),
    ],
)
def test_bad_factors_are_refused(
    tmp_path: Path, factors: list[str], repeats: int, message: str
) -> None:
    with pytest.raises(studies.SpecError, match=message):
        ablation_spec(studies.spec_of(write(tmp_path)), factors, repeats)


@pytest.mark.slow  # a worker process and twelve runs
def test_hpstudy_ablate_runs_the_grid_and_prints_the_table(tmp_path: Path, capsys: Any) -> None:
    picture = tmp_path / "ablation.png"
    argv = ["ablate", str(write(tmp_path)), "--factors", "init,activation", "--repeats", "2"]
    assert main([*argv, "-o", str(picture)]) == 0
    assert picture.read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "2 cells" not in out and "6 cells x 2 seeds = 12 runs" in out
    assert "95% interval" in out and "significantly worse than the best" in out
    study = optuna.load_study(study_name="abl-ablation", storage=f"sqlite:///{tmp_path / 's.db'}")
    seeds: dict[tuple[str, str], set[int]] = {}
    for trial in study.trials:
        cell = (trial.params["init"], trial.params["activation"])
        seeds.setdefault(cell, set()).add(trial.user_attrs["seed"])
    assert len(seeds) == 6
    assert len({frozenset(s) for s in seeds.values()}) == 1  # every cell ran the same seeds
    kept = StudyAttrs.of(study).ablation
    assert kept is not None and kept.factors == ("init", "activation") and len(kept.rows) == 6


def test_the_picture_draws_every_cell_with_an_interval() -> None:
    from studies.analysis import plot_ablation

    runs = {("a",): {0: 0.9, 1: 0.92}, ("b",): {0: 0.5, 1: 0.52}}
    png = plot_ablation(ablation_table(runs, maximize=True), ["init"], "dev_accuracy")
    assert png[:4] == b"\x89PNG" and len(png) > 5000
