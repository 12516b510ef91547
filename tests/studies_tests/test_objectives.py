"""Several objectives and constraints: the spec's checks, the front, picking and pruning."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

import studies
import trainer
from studies.results import best_trial, picked_trial
from studies.spec import MEASURES, Constraint, SpecError, StudySpec, parse_condition
from studies.storage import EpochStore, create_engine, pareto_front
from studies.workers import EpochHalving, pareto_ranks, promotable


def _spec(**study: Any) -> dict[str, Any]:
    table = {"name": "trade", "n_trials": 4, **study}
    return {
        "study": {k: v for k, v in table.items() if v is not None},
        "train": {"dataset": "digits", "epochs": 2},
        "space": {"lr": {"low": 1e-3, "high": 0.1, "log": True}},
    }


def _problems(**study: Any) -> str:
    with pytest.raises(SpecError) as caught:
        StudySpec.from_dict(_spec(**study))
    return str(caught.value)


TRADE = {"dev_accuracy": "max", "params": "min"}


def test_objectives_give_directions_in_order_and_the_first_learning_metric() -> None:
    spec = StudySpec.from_dict(_spec(objectives={"params": "min", "dev_accuracy": "max"}))
    assert spec.directions == {"params": "minimize", "dev_accuracy": "maximize"}
    assert spec.metric == "dev_accuracy" and spec.train.monitor == "dev_accuracy"
    assert spec.multi


def test_a_multi_objective_spec_survives_its_stored_form() -> None:
    spec = StudySpec.from_dict(
        _spec(objectives=TRADE, constraints={"params": "<= 50000"}, latency_batch=32)
    )
    again = StudySpec.from_dict(spec.to_dict())
    assert again.objectives == spec.objectives
    assert again.objectives.constraints == (Constraint("params", "<=", 50000.0),)


def test_a_multi_objective_study_is_pruned_by_successive_halving_by_default() -> None:
    assert StudySpec.from_dict(_spec(objectives=TRADE)).pruner["name"] == "successive_halving"


def test_objectives_and_metric_together_are_refused() -> None:
    assert "objectives and study.metric are both given" in _problems(
        objectives=TRADE, metric="dev_loss"
    )


def test_an_unknown_objective_is_refused_with_the_closest_name() -> None:
    assert "study.objectives.dev_acuracy: unknown (did you mean 'dev_accuracy'?)" in _problems(
        objectives={"dev_acuracy": "max", "params": "min"}
    )


def test_a_direction_against_the_metric_is_refused() -> None:
    found = _problems(objectives={"dev_loss": "max", "params": "min"})
    assert 'dev_loss is always minimized, not maximized; write dev_loss = "min"' in found


def test_an_objective_the_task_does_not_record_is_refused() -> None:
    data = _spec(objectives={"dev_accuracy": "max", "params": "min"})
    data["train"] = {"dataset": "digits", "task": "regression", "target": "x", "epochs": 2}
    with pytest.raises(SpecError, match="this task records dev_loss, dev_rmse, dev_r2"):
        StudySpec.from_dict(data)


@pytest.mark.parametrize(
    ("bound", "message"),
    [
        ("< 50000", "uses '<'; a bound is '<=' or '>='"),
        ("about 5", "is not a bound; write '<= number' or '>= number'"),
        (50000, "a bound as a string"),
    ],
)
def test_a_bad_constraint_is_refused_with_the_form_to_write(bound: Any, message: str) -> None:
    assert message in _problems(objectives=TRADE, constraints={"params": bound})


def test_a_constraint_on_something_not_recorded_is_refused() -> None:
    found = _problems(objectives=TRADE, constraints={"latency": "<= 2"})
    assert "study.constraints.latency" in found and "did you mean 'latency_ms'?" in found


@pytest.mark.parametrize("sampler", ["random", "qmc", "cmaes"])
def test_a_sampler_that_ignores_constraints_is_refused(sampler: str) -> None:
    found = _problems(metric="dev_loss", constraints={"params": "<= 900"}, sampler=sampler)
    assert f"the {sampler} sampler ignores constraints" in found


@pytest.mark.parametrize("sampler", ["tpe", "nsgaii", "gp"])
def test_samplers_that_use_constraints_are_taken(sampler: str) -> None:
    spec = StudySpec.from_dict(
        _spec(objectives=TRADE, constraints={"params": "<= 900"}, sampler=sampler)
    )
    assert spec.sampler["name"] == sampler


def test_an_optuna_pruner_in_a_multi_objective_study_is_refused() -> None:
    assert "Optuna's pruners judge one objective" in _problems(objectives=TRADE, pruner="median")


def test_a_constraint_measures_how_far_a_value_breaks_it() -> None:
    at_most, at_least = Constraint("params", "<=", 100.0), Constraint("dev_accuracy", ">=", 0.9)
    assert (at_most.violation(150.0), at_most.violation(80.0)) == (50.0, -20.0)
    assert at_least.holds(0.95) and not at_least.holds(0.85)


def test_a_pick_condition_parses_several_bounds() -> None:
    assert parse_condition("params<=50000, latency_ms <= 2") == [
        Constraint("params", "<=", 50000.0),
        Constraint("latency_ms", "<=", 2.0),
    ]
    assert "not a condition" in str(parse_condition("params 50000"))


def test_measure_names_what_a_study_records() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(10, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    found = trainer.measure(model, torch.randn(16, 10), latency_batch=4)
    assert set(found) | {"train_seconds"} == set(MEASURES)


@pytest.mark.parametrize(
    ("value", "competing", "expected"),
    [
        (0.9, [0.1, 0.5], True),  # fewer than 2 * reduction_factor: only the best goes on
        (0.5, [0.1, 0.9], False),
        (0.9, [0.1, 0.2, 0.3, 0.8, 0.95], True),  # 6 // 3 = 2 go on: 0.9 and 0.95
        (0.8, [0.1, 0.2, 0.3, 0.9, 0.95], False),
    ],
)
def test_halving_on_one_metric_is_optuna_s_rule(
    value: float, competing: list[float], expected: bool
) -> None:
    assert promotable((-value,), [(-v,) for v in competing], 3) is expected
    ours = promotable((-value,), [(-v,) for v in competing], 3)
    assert ours is _optuna_promotes(value, competing, 3)


def _optuna_promotes(value: float, competing: list[float], reduction_factor: int) -> bool:
    """What Optuna's SuccessiveHalvingPruner decides for `value` (maximised) at a rung."""
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=reduction_factor
        ),
    )
    for other in competing:
        trial = study.ask()
        trial.report(other, 1)
        trial.should_prune()
    trial = study.ask()
    trial.report(value, 1)
    return not trial.should_prune()


def test_halving_keeps_a_small_network_nothing_smaller_beats() -> None:
    # (1 - accuracy, params): the small one is less accurate than both, but no more
    # accurate network is as small, so it is on the first front
    small, large = (0.30, 1_000.0), [(0.10, 50_000.0), (0.12, 40_000.0)]
    assert promotable(small, large, 3)
    assert not promotable((0.30, 60_000.0), large, 3)


def test_pareto_ranks_sort_points_into_fronts() -> None:
    assert pareto_ranks([(1, 3), (2, 2), (3, 1), (2, 3), (3, 3)]) == [0, 0, 0, 1, 2]


def test_halving_rungs_grow_by_the_reduction_factor() -> None:
    halving = EpochHalving(
        EpochStore(create_engine("sqlite://")),
        1,
        "dev_loss",
        maximize=False,
        min_resource=2,
        reduction_factor=3,
    )
    assert [e for e in range(40) if halving.is_rung(e)] == [2, 6, 18]


def test_halving_judges_sparse_steps_at_the_first_step_past_a_rung() -> None:
    # fractions (1/9, 1/3) report steps 1, 3, 9, 18, 27, ...; rungs at 1, 4, 16, 64
    halving = EpochHalving(
        EpochStore(create_engine("sqlite://")), 1, "dev_loss", maximize=False, reduction_factor=4
    )
    steps = [1, 3, 9, 18, 27, 36, 45, 54, 63, 72]
    previous = [-1, *steps[:-1]]
    judged = [s for s, p in zip(steps, previous, strict=True) if halving.is_rung(s, previous=p)]
    assert judged == [1, 9, 18, 72]


# --- real studies: two objectives, a constraint, two worker processes ----------------------


def _trade_spec(folder: Path, *, name: str, pruner: str, points: list[str]) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [study]
            name = "{name}"
            storage = "sqlite:///{folder / "t.db"}"
            objectives = {{ dev_accuracy = "max", params = "min" }}
            constraints = {{ params = "<= 3000" }}
            n_trials = {len(points)}
            seed = 1
            sampler = {{ name = "tpe", n_startup_trials = 8 }}
            pruner = {pruner}
            enqueue = [{", ".join(points)}]

            [train]
            dataset = "digits"
            optimizer = "adam"
            epochs = 5
            batch_size = 64
            dev_fraction = 0.2

            [space.lr]
            low = 1e-6
            high = 0.1
            log = true

            [space.hidden]
            choices = [[8], [16], [32], [64]]
            """
        )
    )
    return path


@pytest.fixture(scope="module")
def halved(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Three trials that learn, then one that cannot (lr 1e-6): by the time it starts, two
    of the others have ended, so it meets them at its first rung."""
    folder = tmp_path_factory.mktemp("halved")
    points = [
        "{ lr = 0.02, hidden = [32] }",
        "{ lr = 0.01, hidden = [32] }",
        "{ lr = 0.02, hidden = [16] }",
        "{ lr = 1e-6, hidden = [32] }",
    ]
    pruner = '{ name = "successive_halving", min_resource = 1, reduction_factor = 2 }'
    spec = _trade_spec(folder, name="halved", pruner=pruner, points=points)
    studies.run(str(spec), workers=2, progress=False)
    return "halved", f"sqlite:///{folder / 't.db'}"


@pytest.fixture(scope="module")
def trade(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Four trials of widths 64 (breaks params <= 3000), 32, 16 and 8, none pruned."""
    folder = tmp_path_factory.mktemp("trade")
    points = [f"{{ lr = 0.02, hidden = [{width}] }}" for width in (64, 32, 16, 8)]
    spec = _trade_spec(folder, name="trade", pruner='"none"', points=points)
    studies.run(str(spec), workers=2, progress=False)
    return "trade", f"sqlite:///{folder / 't.db'}"


@pytest.mark.slow
def test_a_multi_objective_study_prunes_a_hopeless_trial(halved: tuple[str, str]) -> None:
    rows = studies.trials(halved[0], storage=halved[1]).rows
    hopeless = [row for row in rows if row.params["lr"] == pytest.approx(1e-6)]
    assert [row.state for row in hopeless] == ["pruned"]
    assert hopeless[0].epochs is not None and hopeless[0].epochs < 5
    assert hopeless[0].measured["params"] == 64 * 32 + 32 + 32 * 10 + 10


@pytest.mark.slow
def test_halving_reads_the_rung_values_of_the_study_s_trials(halved: tuple[str, str]) -> None:
    study = studies.load(halved[0], storage=halved[1])
    engine = create_engine(halved[1])
    try:
        study_id = optuna.storages.RDBStorage(halved[1]).get_study_id_from_name(halved[0])
        values = EpochStore(engine).values_at(study_id, 0, "dev_accuracy")
    finally:
        engine.dispose()
    assert len(values) == len(study.trials)  # every trial trained its first epoch


@pytest.mark.slow
def test_every_trial_records_its_network_s_measures(trade: tuple[str, str]) -> None:
    for row in studies.trials(trade[0], storage=trade[1]).rows:
        assert set(row.measured) == set(MEASURES)
        assert row.measured["latency_ms"] > 0 and row.measured["flops"] > 0


@pytest.mark.slow
def test_an_infeasible_trial_is_listed_but_never_on_the_front(trade: tuple[str, str]) -> None:
    rows = studies.trials(trade[0], storage=trade[1])
    wide = [row for row in rows.rows if row.params["hidden"] == "64"]
    assert [(row.state, row.feasible, row.front) for row in wide] == [("complete", False, False)]
    assert rows.objectives == ("dev_accuracy", "params")
    front = [row for row in rows.rows if row.front]
    assert front and all(row.feasible and (row.values[1] or 0) <= 3000 for row in front)
    assert min(front, key=lambda row: row.values[1] or 0).params["hidden"] == "8"


@pytest.mark.slow
def test_status_shows_the_whole_front(trade: tuple[str, str]) -> None:
    status = studies.status(trade[0], storage=trade[1])
    assert status.directions == {"dev_accuracy": "maximize", "params": "minimize"}
    assert status.constraints == ("params <= 3000",)
    assert status.counts.front == sum(row.front for row in status.best.rows) >= 1


@pytest.mark.slow
def test_an_export_without_a_choice_lists_the_front(trade: tuple[str, str], tmp_path: Path) -> None:
    front = pareto_front(studies.load(trade[0], storage=trade[1]))
    with pytest.raises(studies.StudyError, match="no single best trial") as caught:
        studies.export(trade[0], storage=trade[1], output=tmp_path / "x.toml")
    for trial in front:
        assert f"trial {trial.number}: dev_accuracy" in str(caught.value)


@pytest.mark.slow
def test_a_pick_exports_the_most_accurate_front_trial_that_meets_it(
    trade: tuple[str, str], tmp_path: Path
) -> None:
    study = studies.load(trade[0], storage=trade[1])
    path = studies.export(
        trade[0], storage=trade[1], output=tmp_path / "p.toml", pick="params<=1500"
    )
    about = trainer.read_config_file(path)["provenance"]
    meeting = [t for t in pareto_front(study) if t.values[1] <= 1500]
    assert about["trial"] == max(meeting, key=lambda t: t.values[0]).number
    assert about["trial"] == picked_trial(study, "params<=1500").number
    assert set(about["objectives"]) == {"dev_accuracy", "params"}
    assert set(about["measured"]) == set(MEASURES)


@pytest.mark.slow
def test_a_pick_no_front_trial_meets_is_refused(trade: tuple[str, str], tmp_path: Path) -> None:
    with pytest.raises(studies.StudyError, match="no trial on the Pareto front"):
        studies.export(trade[0], storage=trade[1], output=tmp_path / "n.toml", pick="params<=1")


@pytest.mark.slow
def test_optuna_dashboard_shows_the_same_front(trade: tuple[str, str]) -> None:
    import json
    import wsgiref.util

    import optuna_dashboard

    from studies.storage import open_storage

    app = optuna_dashboard.wsgi(open_storage(trade[1]))
    environ: dict[str, Any] = {"PATH_INFO": "/api/studies/1", "REQUEST_METHOD": "GET"}
    wsgiref.util.setup_testing_defaults(environ)
    detail = json.loads(b"".join(app(environ, lambda *_args: None)))
    front = pareto_front(studies.load(trade[0], storage=trade[1]))
    assert detail["directions"] == ["maximize", "minimize"]
    assert detail["objective_names"] == ["dev_accuracy", "params"]
    # optuna-dashboard 0.21 computes its front without constraints; the infeasible trials it
    # adds carry their constraint values, which its Pareto plot draws as infeasible
    extra = [t for t in detail["best_trials"] if t["number"] not in {f.number for f in front}]
    assert {t.number for t in front} <= {t["number"] for t in detail["best_trials"]}
    assert all(max(t["constraints"]) > 0 for t in extra)
    wide = [
        t
        for t in detail["trials"]
        if {p["name"]: p["param_external_value"] for p in t["params"]}["hidden"] == "64"
    ]
    # the dashboard's Pareto plot greys a trial whose constraint values are above 0
    assert [t["constraints"] for t in wide] == [[64 * 64 + 64 + 64 * 10 + 10 - 3000]]


@pytest.mark.slow
def test_the_cli_refuses_an_unspecified_export_and_exports_a_pick(
    trade: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from studies.cli import main

    out = str(tmp_path / "cli.toml")
    assert main(["export", trade[0], "--storage", trade[1], "-o", out]) == 2
    refused = capsys.readouterr().err
    assert "choose one of its Pareto front with --trial N or with --pick" in refused
    assert "Traceback" not in refused
    assert (
        main(["export", trade[0], "--storage", trade[1], "-o", out, "--pick", "params<=1500"]) == 0
    )
    assert "params" in capsys.readouterr().out and Path(out).is_file()


@pytest.mark.slow
def test_the_cli_marks_the_front_with_a_column_per_objective(
    trade: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from studies.cli import main

    assert main(["trials", trade[0], "--storage", trade[1]]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if "dev_accuracy" in line)
    assert "params" in header and "front" in header and "hyperparameters" in header
    assert "infeasible" in table and "*" in table


# --- a single objective with a constraint -------------------------------------------------


def _constrained_study(url: str) -> optuna.Study:
    """Trial 0 is the most accurate but breaks its constraint; trial 1 keeps it."""
    from studies.storage import CONSTRAINTS_ATTR

    study = optuna.create_study(study_name="one", storage=url, direction="maximize")
    study.set_metric_names(["dev_accuracy"])
    lr = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    for value, violation in ((0.97, 10_000.0), (0.95, -2_000.0), (0.90, -9_000.0)):
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params={"lr": 0.01},
                distributions={"lr": lr},
                system_attrs={CONSTRAINTS_ATTR: [violation]},
                user_attrs={"measured": {"params": 50_000.0 + violation}},
            )
        )
    return study


def test_a_single_objective_best_trial_meets_the_constraints(tmp_path: Path) -> None:
    study = _constrained_study(f"sqlite:///{tmp_path / 'c.db'}")
    assert best_trial(study).number == 1
    assert [t.number for t in pareto_front(study)] == [1]


def test_a_single_objective_table_lists_the_infeasible_trial_after_the_feasible(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    _constrained_study(url)
    rows = studies.trials("one", storage=url)
    assert [(r.number, r.front, r.feasible) for r in rows.rows] == [
        (1, True, True),
        (2, False, True),
        (0, False, False),
    ]
    assert rows.constrained and not rows.several


def test_a_single_objective_pick_chooses_among_feasible_trials(tmp_path: Path) -> None:
    study = _constrained_study(f"sqlite:///{tmp_path / 'c.db'}")
    assert picked_trial(study, "params<=45000").number == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_latency_is_measured_on_the_trial_s_gpu() -> None:
    model = torch.nn.Linear(64, 10).cuda()
    found = trainer.measure(model, torch.randn(32, 64, device="cuda"), latency_batch=32)
    assert found["latency_ms"] > 0 and next(model.parameters()).is_cuda


def test_an_ablation_of_several_objectives_is_refused() -> None:
    found = _problems(objectives=TRADE, ablation={"factors": ["optimizer"], "repeats": 2})
    assert "study.ablation: an ablation compares its cells on one metric" in found


def test_a_bad_latency_batch_is_refused() -> None:
    assert "study.latency_batch: examples per timed forward, >= 1; got 0" in _problems(
        objectives=TRADE, latency_batch=0
    )


def test_a_study_resumed_with_other_objectives_is_refused(tmp_path: Path) -> None:
    from studies.storage import create_or_resume, open_storage

    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = StudySpec.from_dict(_spec(objectives=TRADE, storage=url))
    create_or_resume(first, open_storage(url))
    other = StudySpec.from_dict(
        _spec(objectives={"dev_accuracy": "max", "flops": "min"}, storage=url)
    )
    with pytest.raises(studies.StudyError, match="exists with the objectives dev_accuracy, params"):
        create_or_resume(other, open_storage(url))


@pytest.mark.slow
def test_the_report_draws_the_front(trade: tuple[str, str], tmp_path: Path) -> None:
    page = studies.report(trade[0], storage=trade[1], output=tmp_path / "r.html").read_text()
    front = pareto_front(studies.load(trade[0], storage=trade[1]))
    assert "<h2>Pareto front</h2>" in page
    assert "dev_accuracy is maximized and params is minimized" in page
    assert f"Pareto front: trials {', '.join(str(t.number) for t in front)}" in page
    section = page.split("<h2>Pareto front</h2>", 1)[1].split("<h2>", 1)[0]
    assert "not available" not in section and "plotly" in section
