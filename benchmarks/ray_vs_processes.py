"""The same study with 2 local worker processes and with 2 workers on a local Ray (issue 19).

The built-in `digits-mlp` study (seed 0, a fixed trial budget) runs from a fresh SQLite file
each time, alternating which kind goes first. Reported per run: the wall time of the whole
study (`run_study`: checks, the study, the workers, until the last one ends); for Ray also
its start-up (`ray.init` of a local instance, timed on its own, before `run_study`, which then
uses it) and its shut-down. The goal: Ray's study time minus its start-up within 10% of the
processes' study time, i.e. (Ray - start-up) / processes <= 1.10.

    HPSTUDY_THREADS=1 .venv/bin/python benchmarks/ray_vs_processes.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from studies import load_spec
from studies.spec import RaySettings
from studies.workers import run_study
from studies.workers._ray import connect

HERE = Path(__file__).parent


def one_run(kind: str, n_trials: int, workers: int) -> dict[str, Any]:
    """One whole study of `kind` ("processes" or "ray") in a fresh database."""
    import ray

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        spec = load_spec("digits-mlp").replace(storage=url, n_trials=n_trials)
        quiet = lambda _line: None  # noqa: E731
        startup = shutdown = 0.0
        settings = RaySettings() if kind == "ray" else None
        if settings is not None:
            started = time.perf_counter()
            connect(ray, settings, workers)
            startup = time.perf_counter() - started
        started = time.perf_counter()
        study = run_study(spec, workers=workers, echo=quiet, ray=settings)
        seconds = time.perf_counter() - started
        if settings is not None:
            stopped = time.perf_counter()
            ray.shutdown()
            shutdown = time.perf_counter() - stopped
        trials = study.get_trials(deepcopy=False)
        states = [t.state.name for t in trials]
        return {
            "kind": kind,
            "study_seconds": seconds,  # run_study, from its call to its return
            "startup_seconds": startup,  # ray.init of the local instance (Ray only)
            "shutdown_seconds": shutdown,  # ray.shutdown (Ray only)
            "whole_seconds": startup + seconds,  # what a user waits for the study
            "complete": states.count("COMPLETE"),
            "pruned": states.count("PRUNED"),
            "failed": states.count("FAIL"),
            "running": states.count("RUNNING"),
            "best_value": study.best_value,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20, help="the study's trial budget")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "ray_vs_processes.json"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = []
    for repeat in range(args.repeats):
        order = ("processes", "ray") if repeat % 2 == 0 else ("ray", "processes")
        for kind in order:
            run = one_run(kind, args.trials, args.workers) | {"repeat": repeat}
            runs.append(run)
            print(
                f"repeat {repeat} {kind:9s}: whole {run['whole_seconds']:6.1f} s "
                f"(start-up {run['startup_seconds']:4.1f} s, shut-down "
                f"{run['shutdown_seconds']:4.1f} s); {run['complete']} complete, "
                f"{run['pruned']} pruned, {run['failed']} failed, best {run['best_value']:.4f}",
                flush=True,
            )

    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["kind"] == kind)

    processes = median("processes", "whole_seconds")
    ray_whole, ray_startup = median("ray", "whole_seconds"), median("ray", "startup_seconds")
    ratios = [
        (r["whole_seconds"] - r["startup_seconds"]) / p["whole_seconds"]
        for r, p in zip(
            [r for r in runs if r["kind"] == "ray"],
            [r for r in runs if r["kind"] == "processes"],
            strict=True,
        )
    ]
    summary = {
        "processes_median_seconds": processes,
        "ray_median_seconds": ray_whole,
        "ray_startup_median_seconds": ray_startup,
        "ratio_ray_minus_startup_over_processes_median": statistics.median(ratios),
        "ratios_per_repeat": ratios,
    }
    print(json.dumps(summary, indent=2))
    result = {
        "command": f"HPSTUDY_THREADS={os.environ.get('HPSTUDY_THREADS', '')} "
        f".venv/bin/python benchmarks/ray_vs_processes.py --repeats {args.repeats} "
        f"--trials {args.trials} --workers {args.workers}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "spec": "digits-mlp (seed 0)",
        "n_trials": args.trials,
        "workers": args.workers,
        "summary": summary,
        "runs": runs,
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
