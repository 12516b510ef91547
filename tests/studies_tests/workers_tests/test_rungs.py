"""The costs of rungs inside the first epoch, and fractions proposed from them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import studies
from studies.workers._plan import Plan, expected_epochs
from studies.workers._rungs import DEV_SHARE, propose_fractions, rung_costs


def test_a_rung_costs_its_share_of_training_and_every_dev_evaluation_so_far() -> None:
    rungs = rung_costs((0.25, 0.5), train=8.0, dev=1.0)
    assert [r.fraction for r in rungs] == [0.25, 0.5, 1.0]
    assert [r.epochs for r in rungs] == pytest.approx([3 / 9, 6 / 9, 11 / 9])
    assert [r.dev_share for r in rungs] == pytest.approx([1 / 3, 2 / 6, 3 / 11])


def test_the_proposal_goes_as_deep_as_the_dev_evaluations_allow() -> None:
    # dev evaluation 1% of an epoch's training: 1/27 costs 3.7% + 1% -> dev 21%: too much;
    # 1/9 -> 11.1% + 1% -> 8.3%, and 1/3 -> 33.3% + 2% -> 5.7%: both within 10%
    proposed = propose_fractions(
        train=100.0, dev=1.0, reduction_factor=3, rows=60_000, batch_size=64
    )
    assert proposed == (0.1111, 0.3333)
    rungs = rung_costs(proposed, train=100.0, dev=1.0)
    assert all(r.dev_share <= DEV_SHARE for r in rungs)


def test_a_cheap_dev_split_gets_the_deepest_proposal() -> None:
    proposed = propose_fractions(
        train=100.0, dev=0.01, reduction_factor=3, rows=60_000, batch_size=64
    )
    assert proposed == (0.0123, 0.037, 0.1111, 0.3333)


def test_a_fraction_smaller_than_a_batch_is_not_proposed() -> None:
    proposed = propose_fractions(train=100.0, dev=0.01, reduction_factor=3, rows=600, batch_size=64)
    assert proposed == (0.1111, 0.3333)  # 600 / 27 = 22 rows: less than a batch


def test_an_expensive_dev_split_gets_no_proposal() -> None:
    assert (
        propose_fractions(train=1.0, dev=1.0, reduction_factor=3, rows=10**5, batch_size=64) == ()
    )


def test_halving_with_fractions_expects_a_fraction_of_an_epoch_at_the_lowest_rungs() -> None:
    halving = {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3}
    # steps of 1/9 epoch: rungs at 1/9, 1/3, 1 and 3 epochs trained, 1/81 of trials run all 6
    expected = 2 / 3 * (1 / 9) + 2 / 9 * (1 / 3) + 2 / 27 * 1 + 2 / 81 * 3 + 1 / 81 * 6
    assert expected_epochs(halving, 6, unit=1 / 9) == pytest.approx(expected)


def spec(folder: Path, fractions: str) -> studies.StudySpec:
    path = folder / "f.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [study]
            name = "f"
            storage = "sqlite:///{folder / "s.db"}"
            n_trials = 4
            pruner = {{ name = "successive_halving", min_resource = 1, reduction_factor = 3 }}

            [train]
            dataset = "digits"
            {fractions}

            [space.lr]
            low = 0.001
            high = 0.1
            """
        )
    )
    return studies.spec_of(str(path))


def plan_of(**changes: object) -> Plan:
    values: dict[str, object] = {
        "epoch_seconds": 101.0,
        "threads": 1,
        "budget": 600.0,
        "workers": 1,
        "epochs": 5,
        "max_epochs": 10,
        "epochs_per_trial": 2.0,
        "pruner": "the successive_halving pruner",
        "train_seconds": 100.0,
        "dev_seconds": 1.0,
    }
    return Plan(**{**values, **changes})  # type: ignore[arg-type]


def test_the_plan_shows_the_costs_of_the_specs_rungs(tmp_path: Path) -> None:
    lines = plan_of().rung_lines(spec(tmp_path, "fractions = [0.1111, 0.3333]"))
    assert "one dev evaluation 1.00 s" in lines[0]
    assert "0.111 -> 0.12 epochs (dev 8%)" in lines[1]
    assert "the whole epoch -> 1.02 epochs (dev 3%)" in lines[1]


def test_the_plan_proposes_fractions_to_a_spec_without_them(tmp_path: Path) -> None:
    lines = plan_of(proposed=(0.1111, 0.3333)).rung_lines(spec(tmp_path, ""))
    assert "option: fractions = [0.1111, 0.3333] in [train]" in lines[1]
    assert "min_resource = 1" in lines[1]


def test_a_worker_before_any_run_chose_fractions_trains_whole_epochs(tmp_path: Path) -> None:
    import optuna

    from studies.storage import write_study_attrs
    from studies.workers._fractions_auto import with_fractions

    auto = spec(tmp_path, 'fractions = "auto"')
    study = optuna.create_study()
    assert with_fractions(auto, study).train.fractions == ()
    write_study_attrs(study, fractions=(0.1111, 0.3333))
    assert with_fractions(auto, study).train.fractions == (0.1111, 0.3333)


def test_the_dashboard_note_says_what_the_steps_count() -> None:
    from studies.analysis import Diagnosis
    from studies.workers import trial_note
    from trainer import EpochResult

    def at(epoch: int, fraction: float) -> EpochResult:
        return EpochResult(epoch, 1.0, 0.5, 1.0, 0.5, 0.1, {}, {}, 0.1, fraction=fraction)

    note = trial_note(
        0,
        [at(0, 0.1111), at(0, 0.3333), at(0, 1.0)],
        "completed",
        0,
        Diagnosis.from_dict({"labels": [], "numbers": {}}),
        fractions=(0.1111, 0.3333),
    )
    assert "completed after 1 epochs and 2 point(s) inside the first" in note
    assert "steps count 0.111 of an epoch trained (step 9 ends epoch 0)" in note
