"""Time to the first 98% MNIST dev accuracy: hpstudy against plain-Optuna searches, many seeds.

For each seed, with the same budget and two worker processes per side (one torch thread
each), one after the other on this machine:

- `hpstudy`: `hpstudy run mnist-mlp --workers 2 --seed S` (the built-in spec as it ships, its
  enqueued textbook configuration first);
- `hpstudy-no-start`: the same spec without its `[study] enqueue` (what `mnist-mlp` was before
  it started from that configuration);
- `hpstudy-auto-lr`: the spec without `enqueue` and with `[space.lr] auto = true` instead of its
  hand-written bounds, its range tests included in its time;
- `baseline`: the Optuna-examples way (benchmarks/baseline_optuna.py: DataLoader, TPE, median
  pruner), the same space, epoch cap, batch size and dev split;
- `plain+trainer`: plain Optuna around hpstudy's trainer with TPE + Hyperband
  (benchmarks/plain_optuna_trainer.py).

Each side's clock starts when its processes are launched; it stops at the first epoch with
dev accuracy >= 0.98 (the side is then stopped, to save machine time) or at the budget (then
the time is reported as "more than the budget"). Results are saved after every side, so an
interrupted run resumes where it stopped.

    .venv/bin/python benchmarks/time_to_target.py --seeds 0 1 2 3 4 5 6 7 8 9 --budget 600
    .venv/bin/python benchmarks/time_to_target.py --summary   # tables and the picture only
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TARGET = 0.98
SIDES = ("hpstudy", "hpstudy-no-start", "hpstudy-auto-lr", "baseline", "plain+trainer")
# sides compared with hpstudy only (the second list of ratios is against the unstarted spec)
PAIRS_DONE = ("hpstudy", "hpstudy-no-start")
SPECS = ROOT / "studies" / "spec" / "specs"
RESULTS = ROOT / "benchmarks" / "time_to_target.json"
PICTURE = ROOT / "benchmarks" / "time_to_target.png"
POLL = 2.0
LOGGED = ("time", "trial", "epoch", "dev_loss", "dev_accuracy")  # an epoch, as read back


def env() -> dict[str, str]:
    return dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HPSTUDY_THREADS="1",
        PYTHONUNBUFFERED="1",
    )


def launch(side: str, seed: int, work: Path) -> tuple[list[subprocess.Popen[bytes]], Any]:
    """Starts a side's processes; returns them and a function that reads its epochs so far."""
    if side.startswith("hpstudy"):
        spec = "mnist-mlp" if side == "hpstudy" else str(variant(side, work))
        command = hpstudy_command(spec, work, name=side, seed=seed)
        return [start(command, work, side)], lambda: _epochs_in_db(work / "study.db")
    script = "baseline_optuna.py" if side == "baseline" else "plain_optuna_trainer.py"
    if side == "baseline":
        _create(f"sqlite:///{work / 'study.db'}")
    processes = [
        start(command, work, f"{side}-{index}")
        for index, command in enumerate(script_commands(script, seed, work))
    ]
    return processes, lambda: _epochs_in_logs(work)


def start(command: list[str], work: Path, name: str) -> subprocess.Popen[bytes]:
    """Starts `command` in a session of its own (so `stop` ends its children too), from the
    repository's root, one torch thread, its output in `work`/logs/`name`.log."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        command, cwd=ROOT, env=env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def hpstudy_command(
    spec: str, work: Path, *, name: str, seed: int, extra: Sequence[str] = ()
) -> list[str]:
    """`hpstudy run` of `spec` (a name or a file) with 2 workers on `work`/study.db, trials
    without end (the side is stopped from outside), the repository's data folder."""
    url = f"sqlite:///{work / 'study.db'}"
    command = [str(BIN / "hpstudy"), "run", spec, "--workers", "2", "--storage", url]
    command += ["--name", name, "--n-trials", "100000", "--seed", str(seed)]
    return [*command, "--set", f"data_dir={ROOT / 'data'}", *extra]


def script_commands(
    script: str, seed: int, work: Path, *, extra: Sequence[str] = ()
) -> list[list[str]]:
    """The 2 processes of a plain-Optuna side (a script in benchmarks/ taking `--storage`,
    `--timeout`, `--seed` and `--log`) on one study in `work`/study.db, each logging its
    epochs to `work`/epochs-<index>.jsonl; the seeds 2 * seed and 2 * seed + 1."""
    url = f"sqlite:///{work / 'study.db'}"
    return [
        [
            sys.executable,
            str(ROOT / "benchmarks" / script),
            "--storage",
            url,
            "--timeout",
            "100000",
            "--seed",
            str(2 * seed + index),
            "--log",
            str(work / f"epochs-{index}.jsonl"),
            "--data-dir",
            str(ROOT / "data"),
            *extra,
        ]
        for index in range(2)
    ]


def variant(side: str, work: Path) -> Path:
    """The built-in spec without its enqueued start (for auto-lr also `lr.auto`), as a file."""
    return without_enqueue(
        "mnist-mlp",
        work / f"{side}.toml",
        name=f"mnist-mlp-{side}",
        auto_lr=side.endswith("auto-lr"),
    )


def without_enqueue(spec: str, path: Path, *, name: str, auto_lr: bool = False) -> Path:
    """Writes built-in `spec` without its `[study] enqueue` (if any), named `name`, to `path`
    (with `auto_lr`: `[space.lr] auto = true` instead of its bounds)."""
    import tomli_w

    values = tomllib.loads((SPECS / f"{spec}.toml").read_text())
    values["study"].pop("enqueue", None)
    values["study"]["name"] = name
    if auto_lr:
        values["space"]["lr"] = {"auto": True}
    path.write_text(tomli_w.dumps(values))
    return path


def _create(url: str) -> None:
    import optuna

    optuna.create_study(
        study_name="baseline", storage=url, direction="minimize", load_if_exists=True
    )


def _epochs_in_db(path: Path) -> list[tuple[float, float]]:
    return [(e["time"], e["dev_accuracy"] or 0.0) for e in epochs_in_db(path)]


def epochs_in_db(path: Path, *, study: str | None = None) -> list[dict[str, Any]]:
    """Every epoch an hpstudy study in the sqlite file `path` stored so far (of the study named
    `study` only, if given): `time` (Unix seconds at its end), `trial` (number), `epoch` (from
    0), `dev_loss` and `dev_accuracy` (None where not finite); none while the file or its
    tables do not exist yet."""
    if not path.exists():
        return []
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("hpstudy_epochs"):
                return []
            query = (
                "SELECT e.finished_at, t.number, e.epoch, e.dev_loss, e.dev_accuracy "
                "FROM hpstudy_epochs e JOIN trials t ON t.trial_id = e.trial_id "
                "JOIN studies s ON s.study_id = t.study_id"
            )
            if study is not None:
                query += " WHERE s.study_name = :study"
            rows = connection.execute(sa.text(query), {"study": study}).all()
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()
    return [dict(zip(LOGGED, row, strict=True)) for row in rows]


def _epochs_in_logs(work: Path) -> list[tuple[float, float]]:
    return [(e["time"], float(e["dev_accuracy"])) for e in epochs_in_logs(work)]


def epochs_in_logs(work: Path) -> list[dict[str, Any]]:
    """Every epoch logged so far in `work`/epochs-*.jsonl (one JSON line per epoch, with the
    keys of `epochs_in_db`); a line being written is skipped."""
    points = []
    for path in work.glob("epochs-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            points.append({key: record.get(key) for key in LOGGED})
    return points


def stop(processes: list[subprocess.Popen[bytes]], work: Path) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # hpstudy's workers run in sessions of their own (the runner stops them on SIGTERM);
    # any left after a SIGKILL name this side's database on their command line
    subprocess.run(["pkill", "-f", str(work / "study.db")], check=False)


def measure(side: str, seed: int, budget: float, work: Path) -> dict[str, Any]:
    start = time.time()
    load = os.getloadavg()[0]
    processes, epochs = launch(side, seed, work)
    reached = None
    try:
        while time.time() - start < budget:
            time.sleep(POLL)
            hits = [t for t, a in epochs() if a >= TARGET]
            if hits:
                reached = (min(hits) - start) / 60
                break
            if all(p.poll() is not None for p in processes):
                break
    finally:
        stop(processes, work)
    points = sorted(epochs())
    best, curve = 0.0, []
    for when, accuracy in points:
        if accuracy > best:
            best = accuracy
            curve.append(((when - start) / 60, best))
    return {
        "side": side,
        "seed": seed,
        "budget_minutes": budget / 60,
        "minutes_to_target": reached,
        "epochs": len(points),
        "best_dev_accuracy": best,
        "curve": curve,
        "load_before": round(load, 1),
    }


def summary(results: list[dict[str, Any]]) -> str:
    sides = [s for s in SIDES if any(r["side"] == s for r in results)]
    seeds = sorted({r["seed"] for r in results})

    def cell(run: dict[str, Any] | None) -> str:
        if run is None:
            return "-"
        if run["minutes_to_target"] is None:
            return f"> {run['budget_minutes']:.0f}"
        return f"{run['minutes_to_target']:.2f}"

    def find(side: str, seed: int) -> dict[str, Any] | None:
        return next((r for r in results if r["side"] == side and r["seed"] == seed), None)

    lines = ["| seed | " + " | ".join(sides) + " |", "|---:|" + "---:|" * len(sides)]
    for seed in seeds:
        lines.append(f"| {seed} | " + " | ".join(cell(find(s, seed)) for s in sides) + " |")
    lines += ["", "| ratio (minutes of one side / another's) | per seed | median |"]
    lines.append("|---|---|---:|")
    pairs = [(other, "hpstudy") for other in sides if other != "hpstudy"]
    pairs += [(other, "hpstudy-no-start") for other in sides if other not in PAIRS_DONE]
    for other, mine_side in pairs:
        ratios = []
        for seed in seeds:
            mine, theirs = find(mine_side, seed), find(other, seed)
            if mine is None or theirs is None or mine["minutes_to_target"] is None:
                continue
            minutes = theirs["minutes_to_target"] or theirs["budget_minutes"]  # a lower bound
            bound = "" if theirs["minutes_to_target"] else ">="
            ratios.append((minutes / mine["minutes_to_target"], bound))
        if not ratios:
            continue
        shown = ", ".join(f"{b}{r:.2f}" for r, b in ratios)
        median = statistics.median(r for r, _ in ratios)
        lines.append(f"| {other} / {mine_side} | {shown} | {median:.2f} |")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    colors = {side: f"C{i}" for i, side in enumerate(SIDES)}
    for run in results:
        if not run["curve"]:
            continue
        # each curve ends where its side stopped: at the target (a dot) or at the budget
        end = run["minutes_to_target"] or run["budget_minutes"]
        x = [m for m, _ in run["curve"] if m <= end] + [end]
        y = [a for m, a in run["curve"] if m <= end]
        if not y:
            continue
        y.append(y[-1])
        label = run["side"] if run["seed"] == min(r["seed"] for r in results) else None
        color = colors[run["side"]]
        axes.step(x, y, where="post", color=color, alpha=0.7, label=label)
        if run["minutes_to_target"]:
            axes.plot([end], [y[-1]], "o", color=color, markersize=4)
    axes.axhline(TARGET, color="grey", linestyle="--", linewidth=1)
    axes.set_ylim(0.95, 0.99)
    axes.set_xscale("log")
    axes.set_xlabel("minutes since start (log scale)")
    axes.set_ylabel("best dev accuracy so far")
    axes.set_title("MNIST MLP search, 2 workers: every seed of every side")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(PICTURE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--budget", type=float, default=600, help="seconds per side and seed")
    parser.add_argument("--work", default="/tmp/time_to_target")
    parser.add_argument("--summary", action="store_true", help="only print and draw")
    args = parser.parse_args()
    results: list[dict[str, Any]] = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if not args.summary:
        for seed in args.seeds:
            for side in args.sides:
                if any(r["side"] == side and r["seed"] == seed for r in results):
                    continue
                work = Path(args.work) / f"{side}-{seed}"
                subprocess.run(["rm", "-rf", str(work)], check=True)
                work.mkdir(parents=True)
                run = measure(side, seed, args.budget, work)
                print(json.dumps({k: v for k, v in run.items() if k != "curve"}), flush=True)
                results.append(run)
                RESULTS.write_text(json.dumps(results, indent=1))
    print(summary(results))
    plot(results)


if __name__ == "__main__":
    main()
