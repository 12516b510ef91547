"""End to end on MNIST: hpstudy's default study against a plain-Optuna search (issue 6).

With the same wall-clock budget and two worker processes each (one torch thread each, so the
two cores are shared alike), runs

1. `hpstudy run mnist-mlp --workers 2` (the built-in spec, budget given as --timeout), and
2. `benchmarks/baseline_optuna.py` twice on one `sqlite:///` study: the Optuna-examples way
   (one objective with `trial.suggest_*`, a `DataLoader` over torchvision's MNIST, TPE and
   the median pruner), with the same search space, epoch cap, batch size and dev split;

then exports each best configuration and retrains it with `hpstudy train --test`. It reports
trials finished and pruned, epochs trained, the best dev accuracy over time (a picture), the
time to first reach 98.0% dev accuracy, and the test loss and accuracy of each retrained best
config. `--cnn` runs the built-in `mnist-cnn` study once and retrains its best config.

    .venv/bin/python benchmarks/study_vs_baseline.py --budget 1500
    .venv/bin/python benchmarks/study_vs_baseline.py --cnn --budget 1800
    .venv/bin/python benchmarks/study_vs_baseline.py --budget 600 --seed 1 --no-report \
        --results benchmarks/study_vs_baseline_seed1.json   # another draw of both searches

Results go to benchmarks/study_vs_baseline.json (and .png); each study's report to
benchmarks/bench_mlp_report.html and bench_cnn_report.html. Run it on an otherwise idle
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HPSTUDY = str(BIN / "hpstudy")
TARGET = 0.98  # dev accuracy whose first arrival is timed
OUT = ROOT / "benchmarks"


def run(command: list[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> str:
    """Runs a command from the repository root; returns its output, raises on failure."""
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def one_thread_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HPSTUDY_THREADS="1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def retrain(config: Path, log: Path) -> dict[str, float]:
    """`hpstudy train CONFIG --test`; the test loss and accuracy it prints.

    On one torch thread, as every trial of both searches trained: hpstudy's exported best
    then repeats its trial exactly (same summation order).
    """
    out = run([HPSTUDY, "train", str(config), "--test", "--threads", "1"], log=log)
    match = re.search(r"test loss ([\d.]+), test accuracy ([\d.]+)%", out)
    if match is None:
        raise RuntimeError(f"no test line in:\n{out}")
    return {"test_loss": float(match[1]), "test_accuracy": float(match[2]) / 100}


def curve_summary(points: list[tuple[float, float]], start: float) -> dict[str, Any]:
    """Best-so-far dev accuracy over time (minutes since start) and the time to TARGET."""
    best, curve, reached = 0.0, [], None
    for when, accuracy in sorted(points):
        if accuracy > best:
            best = accuracy
            curve.append(((when - start) / 60, best))
        if reached is None and accuracy >= TARGET:
            reached = (when - start) / 60
    return {"curve": curve, "best_dev_accuracy": best, "minutes_to_target": reached}


def counts(study: optuna.Study) -> dict[str, int]:
    states = [t.state.name for t in study.trials]
    return {s.lower(): states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}


def hpstudy_side(
    spec: str, name: str, work: Path, budget: float, *, seed: int = 0, report: bool = True
) -> dict[str, Any]:
    url = f"sqlite:///{work / (name + '.db')}"
    start = time.time()
    run(
        [
            HPSTUDY,
            "run",
            spec,
            "--workers",
            "2",
            "--storage",
            url,
            "--name",
            name,
            "--n-trials",
            "100000",
            "--timeout",
            str(budget),
            "--seed",
            str(seed),
        ],
        env=one_thread_env(),
        log=work / f"{name}-run.log",
    )
    wall = time.time() - start
    study = optuna.load_study(study_name=name, storage=url)
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT finished_at, dev_accuracy FROM hpstudy_epochs")
        ).all()
    engine.dispose()
    points = [(float(t), float(a or 0.0)) for t, a in rows]
    best = work / f"{name}-best.toml"
    run([HPSTUDY, "export", name, "--storage", url, "-o", str(best)])
    result = {
        "wall_seconds": wall,
        "trials": counts(study),
        "epochs": len(points),
        **curve_summary(points, start),
        "best_value": study.best_value,
        "best_params": study.best_params,
        "retrained": retrain(best, work / f"{name}-train.log"),
    }
    if report:
        run([HPSTUDY, "report", name, "--storage", url, "-o", str(OUT / f"{name}_report.html")])
    return result


def baseline_side(work: Path, budget: float, *, seed: int = 0) -> dict[str, Any]:
    url = f"sqlite:///{work / 'baseline.db'}"
    optuna.create_study(study_name="baseline", storage=url, direction="minimize")
    start = time.time()
    processes = []
    for index in range(2):
        command = [sys.executable, str(ROOT / "benchmarks" / "baseline_optuna.py")]
        command += ["--storage", url, "--timeout", str(budget), "--seed", str(2 * seed + index)]
        command += ["--log", str(work / f"baseline-{index}.jsonl")]
        log = open(work / f"baseline-{index}.log", "w")  # noqa: SIM115 - closed below
        processes.append(
            (
                subprocess.Popen(
                    command, cwd=ROOT, env=one_thread_env(), stdout=log, stderr=subprocess.STDOUT
                ),
                log,
            )
        )
    for process, log in processes:
        process.wait()
        log.close()
    wall = time.time() - start
    points = []
    for index in range(2):
        for line in (work / f"baseline-{index}.jsonl").read_text().splitlines():
            record = json.loads(line)
            points.append((record["time"], record["dev_accuracy"]))
    study = optuna.load_study(study_name="baseline", storage=url)
    best = study.best_trial
    config = baseline_config(best.params, work / "baseline-best.toml")
    return {
        "wall_seconds": wall,
        "trials": counts(study),
        "epochs": len(points),
        **curve_summary(points, start),
        "best_value": best.value,
        "best_params": best.params,
        "retrained": retrain(config, work / "baseline-train.log"),
    }


def baseline_config(params: dict[str, Any], path: Path) -> Path:
    """The baseline's best parameters as a TrainConfig file on the mnist-mlp spec's base."""
    from studies import load_spec

    base = load_spec("mnist-mlp").train
    values = dict(params)
    if "milestones" in values:
        values["milestones"] = [int(m) for m in str(values["milestones"]).split("-")]
    if values.get("nesterov") and not values.get("momentum"):
        values["nesterov"] = False  # the baseline drops nesterov without momentum, too
    config = base.replace(**values, seed=0)
    config.save(path, extra={"provenance": {"source": "baseline_optuna.py best trial"}})
    return path


def check_same_problem() -> None:
    """The baseline's constants must match the spec it is compared with."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import baseline_optuna

    from studies import load_spec

    train = load_spec("mnist-mlp").train
    assert (train.epochs, train.batch_size) == (baseline_optuna.EPOCHS, baseline_optuna.BATCH_SIZE)
    assert tuple(baseline_optuna.HIDDEN) == train.hidden


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (
        ("hpstudy", "hpstudy mnist-mlp, 2 workers"),
        ("baseline", "Optuna-examples baseline, 2 workers"),
    ):
        if key not in results:
            continue
        curve = results[key]["curve"]
        xs = [m for m, _ in curve] + [results[key]["wall_seconds"] / 60]
        ys = [100 * a for _, a in curve] + [100 * curve[-1][1]]
        ax.step(xs, ys, where="post", label=label)
    ax.axhline(100 * TARGET, color="grey", linestyle="--", linewidth=1, label="98.0% dev accuracy")
    ax.set_ylim(96.0, 99.0)
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("best dev accuracy so far (%)")
    ax.set_title("MNIST MLP search: best dev accuracy over time")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1500, help="seconds per search")
    parser.add_argument("--cnn", action="store_true", help="run the mnist-cnn study instead")
    parser.add_argument("--only", choices=["hpstudy", "baseline"], help="run one side only")
    parser.add_argument("--work", help="folder for databases and logs (default: a temp dir)")
    parser.add_argument(
        "--seed", type=int, default=0, help="hpstudy's study seed; the baseline's are 2S, 2S+1"
    )
    parser.add_argument(
        "--results",
        default=str(OUT / "study_vs_baseline.json"),
        help="the JSON file (its picture goes beside it as .png)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip the hpstudy report page")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load = os.getloadavg()
    work = Path(args.work or tempfile.mkdtemp(prefix="hpbench-"))
    work.mkdir(parents=True, exist_ok=True)
    results_file = Path(args.results)
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    print(f"work folder: {work}", flush=True)
    results["machine"] = f"{os.cpu_count()} cores; load average before: {load}"

    def save() -> None:  # after each side, so that a later failure keeps what was measured
        results_file.write_text(json.dumps(results, indent=2) + "\n")

    if args.cnn:
        results["cnn"] = hpstudy_side(
            "mnist-cnn", "bench_cnn", work, args.budget, seed=args.seed, report=not args.no_report
        )
        results["cnn"]["budget_seconds"] = args.budget
        save()
    else:
        check_same_problem()
        results["budget_seconds"] = args.budget
        results["seed"] = args.seed
        if args.only in (None, "hpstudy"):
            results["hpstudy"] = hpstudy_side(
                "mnist-mlp",
                "bench_mlp",
                work,
                args.budget,
                seed=args.seed,
                report=not args.no_report,
            )
            save()
        if args.only in (None, "baseline"):
            results["baseline"] = baseline_side(work, args.budget, seed=args.seed)
            save()
        plot(results, results_file.with_suffix(".png"))
    print(json.dumps({k: v for k, v in results.items()}, indent=2, default=str)[:4000])


if __name__ == "__main__":
    main()
