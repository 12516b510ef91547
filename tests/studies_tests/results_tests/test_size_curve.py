"""`hpstudy learning-curve`: error against training-set size, read as bias or variance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from studies import StudyError
from studies.analysis import SizePoint, read_size_curve
from studies.cli import main
from studies.results._size_curve import check_sizes
from studies.storage import StudyAttrs

CHANCE = 0.9  # ten classes


def curve(*pairs: tuple[float, float]) -> list[SizePoint]:
    sizes = [100 * 2**i for i in range(len(pairs))]
    return [
        SizePoint(size / sizes[-1], size, (train, train), (dev, dev))
        for size, (train, dev) in zip(sizes, pairs, strict=True)
    ]


def test_a_closing_gap_that_still_falls_is_overfitting_that_more_data_helps() -> None:
    label, numbers, sentence = read_size_curve(
        curve((0.0, 0.40), (0.0, 0.25), (0.01, 0.15), (0.02, 0.10)), chance_error=CHANCE
    )
    assert label == "overfitting"
    assert "more data will help" in sentence
    assert numbers["final_gap"] == pytest.approx(0.08)


def test_a_gap_that_stays_wide_calls_for_regularisation() -> None:
    label, _, sentence = read_size_curve(
        curve((0.0, 0.20), (0.0, 0.21), (0.0, 0.22)), chance_error=CHANCE
    )
    assert label == "overfitting" and "did not narrow" in sentence


def test_close_high_flat_curves_are_underfitting() -> None:
    label, _, sentence = read_size_curve(
        curve((0.25, 0.35), (0.28, 0.32), (0.29, 0.31)), chance_error=CHANCE
    )
    assert label == "underfitting" and "more data will not help" in sentence


def test_close_low_curves_are_a_good_fit() -> None:
    label, _, _ = read_size_curve(
        curve((0.01, 0.08), (0.01, 0.03), (0.01, 0.025)), chance_error=CHANCE
    )
    assert label == "good_fit"


@pytest.mark.parametrize(
    ("sizes", "repeats", "message"),
    [
        ([0.1, 1.5], 3, r"in \(0, 1\].*1\.5"),
        ([0.0, 0.5], 3, r"in \(0, 1\].*0"),
        ([0.5], 3, "at least two different shares"),
        ([0.2, 1.0], 0, "at least 1"),
    ],
)
def test_bad_sizes_are_refused(sizes: list[float], repeats: int, message: str) -> None:
    with pytest.raises(StudyError, match=message):
        check_sizes(sizes, repeats)


def test_the_command_trains_the_best_trial_on_shares_and_keeps_the_curve(
    tiny_study: Any, tmp_path: Path, capsys: Any
) -> None:
    url = tiny_study(tmp_path, run=True)
    picture = tmp_path / "curve.png"
    code = main(
        [
            "learning-curve",
            "tiny",
            "--storage",
            url,
            "--sizes",
            "0.2,1.0",
            "--repeats",
            "2",
            "-o",
            str(picture),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "examples (20%)" in out and "examples (100%)" in out
    assert any(label in out for label in ("overfitting", "underfitting", "good fit"))
    assert picture.read_bytes()[:4] == b"\x89PNG"
    kept = StudyAttrs.of(optuna.load_study(study_name="tiny", storage=url)).learning_curve
    assert kept is not None
    assert [p.fraction for p in kept.points] == [0.2, 1.0]
    assert all(len(p.dev) == 2 for p in kept.points)
    assert main(["learning-curve", "tiny", "--storage", url, "--sizes", "0.1,2"]) == 2
