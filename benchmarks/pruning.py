"""How many epochs pruning saves: a built-in study with its pruner against the same with none.

For each sampler seed, the study runs twice through the real runner (`run_study`: one worker
process, a fresh SQLite file in a temporary folder each time): once with the spec's pruner and
once with `pruner = "none"`, with the same sampler seed and trial count. Reported per run: the
epochs trained (the rows of `hpstudy_epochs`, i.e. every epoch any trial ran), the wall time of
`run_study` (worker start-up included), the best value and the pruned/complete counts; then the
fraction of epochs saved per seed and the median over seeds.

Run from the repository root:

    .venv/bin/python -m benchmarks.pruning                       # digits-mlp, seeds 0 1 2
    .venv/bin/python -m benchmarks.pruning --seeds 0 --n-trials 10
    .venv/bin/python -m benchmarks.pruning --record              # also update RESULTS.md
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from studies import StudySpec, load_spec
from studies.storage import EpochStore, create_engine
from studies.workers import run_study

if __package__ in (None, ""):  # run as a file: the repository root holds `benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import RESULTS, shown_command, write_section

SECTION = "## Pruning savings (issue 3)"


@dataclasses.dataclass(frozen=True)
class Run:
    seed: int
    pruner: str
    epochs: int  # epochs trained over all trials
    seconds: float  # wall time of run_study
    best: float
    best_trial: int
    complete: int
    pruned: int
    failed: int


def run_once(spec: StudySpec, folder: Path) -> tuple[float, optuna.Study]:
    spec = spec.replace(storage=f"sqlite:///{folder / 'study.db'}")
    started = time.perf_counter()
    study = run_study(spec, workers=1, echo=lambda line: None)
    return time.perf_counter() - started, study


def epochs_trained(study: optuna.Study, url: str) -> int:
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.get_study_id_from_name(study.study_name)
    ids = [
        storage.get_trial_id_from_study_id_trial_number(study_id, t.number) for t in study.trials
    ]
    engine = create_engine(url)
    try:
        return sum(EpochStore(engine).counts(ids).values())
    finally:
        engine.dispose()


def measure(base: StudySpec, seed: int, pruner: dict[str, Any]) -> Run:
    spec = base.replace(seed=seed, pruner=pruner)
    with tempfile.TemporaryDirectory(prefix="hpstudy-pruning-") as tmp:
        seconds, study = run_once(spec, Path(tmp))
        url = f"sqlite:///{Path(tmp) / 'study.db'}"
        states = [t.state for t in study.trials]
        return Run(
            seed=seed,
            pruner=pruner["name"],
            epochs=epochs_trained(study, url),
            seconds=seconds,
            best=study.best_value,
            best_trial=study.best_trial.number,
            complete=states.count(optuna.trial.TrialState.COMPLETE),
            pruned=states.count(optuna.trial.TrialState.PRUNED),
            failed=states.count(optuna.trial.TrialState.FAIL),
        )


def report(spec: StudySpec, runs: list[Run], command: str, loads: tuple[str, str]) -> str:
    pruner_name = spec.pruner["name"]
    arguments = ", ".join(f"{k}={v}" for k, v in spec.pruner.items() if k != "name")
    lines = [
        f"`{spec.name}`: {spec.n_trials} trials of up to {spec.train.epochs} epochs, "
        f"{spec.sampler['name']} sampler, with the spec's pruner ({pruner_name}: {arguments}) "
        f"and with none; same sampler seed and trial count in each pair, real runner "
        f"(`run_study`, 1 worker process, {os.environ.get('HPSTUDY_THREADS', 'default')} torch "
        f'thread(s)), a fresh SQLite file per run. "epochs" counts every epoch any trial '
        f"trained (the rows of `hpstudy_epochs`); wall time includes the worker's start-up.",
        "",
        "| seed | pruner | epochs | wall (s) | best dev loss (trial) | complete / pruned / failed"
        " |",
        "| ---: | --- | ---: | ---: | ---: | --- |",
    ]
    for run in runs:
        lines.append(
            f"| {run.seed} | {run.pruner} | {run.epochs} | {run.seconds:.0f} "
            f"| {run.best:.4f} ({run.best_trial}) "
            f"| {run.complete} / {run.pruned} / {run.failed} |"
        )
    saved, faster, gaps = [], [], []
    for seed in sorted({r.seed for r in runs}):
        with_pruner = next(r for r in runs if r.seed == seed and r.pruner != "none")
        without = next(r for r in runs if r.seed == seed and r.pruner == "none")
        saved.append(1 - with_pruner.epochs / without.epochs)
        faster.append(1 - with_pruner.seconds / without.seconds)
        gaps.append(with_pruner.best - without.best)
    lines += [
        "",
        "| seed | epochs saved | wall time saved | best with pruning - best without |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for seed, s, f, g in zip(sorted({r.seed for r in runs}), saved, faster, gaps, strict=True):
        lines.append(f"| {seed} | {s:.0%} | {f:.0%} | {g:+.4f} |")
    lines.append(
        f"| **median** | **{statistics.median(saved):.0%}** | "
        f"**{statistics.median(faster):.0%}** | **{statistics.median(gaps):+.4f}** |"
    )
    lines += [
        "",
        f"Command: `{command}`",
        f"Load average (1, 5, 15 min) before: {loads[0]}; after: {loads[1]}; "
        f"{os.cpu_count()} cores. Other jobs share this machine: wall times are noisy, epoch "
        f"counts and best values are not (they depend on the seeds and the pruner only, up to "
        f"CPU floating-point nondeterminism).",
        "",
    ]
    return "\n".join(lines)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="digits-mlp", help="built-in name or TOML path")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-trials", type=int, help="override the spec's trial budget")
    parser.add_argument("--record", action="store_true", help=f"write the section to {RESULTS}")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    spec = load_spec(args.spec)
    if args.n_trials:
        spec = spec.replace(n_trials=args.n_trials)
    before = load_average()
    runs = []
    for seed in args.seeds:
        for pruner in (spec.pruner, {"name": "none"}):
            run = measure(spec, seed, pruner)
            runs.append(run)
            print(run, flush=True)
    command = " ".join(
        ["HPSTUDY_THREADS=" + os.environ["HPSTUDY_THREADS"]] * ("HPSTUDY_THREADS" in os.environ)
        + [shown_command("benchmarks.pruning", sys.argv[1:])]
    )
    section = report(spec, runs, command, (before, load_average()))
    print(SECTION, section, sep="\n\n")
    if args.record:
        write_section(SECTION, section)


if __name__ == "__main__":
    main()
