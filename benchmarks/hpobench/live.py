"""The live confirmation of the search benchmark (issue 28): real searches on a real task.

For each seed and each side, one after the other on this machine, with the same wall-clock
budget per (side, seed) and 2 worker processes per side (one torch thread each), a fresh
database (or folder) per run, the spec (`--spec`, default `mnist-mlp`) without its `enqueue`:

- `hpstudy`: `hpstudy run <spec without enqueue> --workers 2 --seed S --no-priors` (the
  built-in sampler and pruner: TPE + successive halving, min_resource 1, reduction factor 3);
- `plain+trainer`: plain Optuna around hpstudy's trainer, TPE + Hyperband, 2 processes on one
  sqlite study (benchmarks/plain_optuna_trainer.py, seeds 2S and 2S + 1);
- `top-k`: "one epoch, then the top K" (Egele et al. 2023) in 2 processes around
  `trainer.fit` (benchmarks/hpobench/live_topk.py: random configurations, one epoch each; of
  each batch of `--n` 20 the best `--k` 3 resume from their first epoch's checkpoint to the
  end; sampler seeds 2S and 2S + 1);
- `hpstudy+priors`: `hpstudy run` as `hpstudy`, with priors on, in a copy of an earlier
  study's database (`--priors-from`, e.g. the `hpstudy` side's `study.db` of another spec:
  `mnist-cnn` after `mnist-mlp`), so its first trials are that study's best configurations;
  only the new study's epochs count;
- `ray-tune`: Ray Tune's AsyncHyperBandScheduler (grace_period 1, max_t the spec's epochs,
  its other defaults) + OptunaSearch (seed S), 2 concurrent trials on a local 2-CPU Ray
  (benchmarks/hpobench/live_ray.py).

Every side's clock starts when its processes are launched (start-up, data loading and Ray's
start count); at the budget it is stopped. Every epoch any trial trained is recorded (seconds
since the launch, trial, epoch, dev loss and accuracy), and from them:

- `epochs_to_target`, `seconds_to_target`: the epochs finished (by both workers together,
  counted in the order they finished) and the seconds until the first epoch whose dev loss is
  at most the target; None if none did within the budget;
- `best`: the anytime best dev loss at 25, 50 and 100% of the budget (None before any epoch);
- `trials`, `pruned`: trials started and trials the side stopped early by its rule (Optuna's
  PRUNED trials; top-k's dropped configurations; those Ray's scheduler stopped before max_t);
- `curve`: (seconds, epochs so far, best dev loss so far) at each improvement.

The target defaults to the recorded top-5% dev loss of the spec's recorded curves
(benchmarks/hpobench/<spec>.jsonl.gz, `target_of`: the 5th percentile over the recorded
configurations of each one's best dev loss over its epochs); `--target` overrides it.

Results go to `--out` after every (side, seed); the same command again skips the pairs done
(`--summary` prints only the table: per side, medians over seeds with the per-seed values).
Seeds 2000-2004 (the default) are reporting seeds: nothing is tuned on them.

From the repository root, on an otherwise idle 2-core machine; each run takes its budget plus
about 10 s (stopping it), a `ray-tune` run up to `RAY_GRACE` more (its driver ends its own
trials), so 3 sides x 5 seeds x 10 min take about 2.6 hours, all 4 sides about 3.4 hours:

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.live \\
        --sides hpstudy top-k plain+trainer --seeds 2000 2001 2002 2003 2004 --budget 600 \\
        --out benchmarks/hpobench/live-mnist-mlp.json
    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.live --summary \\
        --out benchmarks/hpobench/live-mnist-mlp.json

Priors for `mnist-cnn` after `mnist-mlp` (issue 28, part 4): the `hpstudy` side's `mnist-mlp`
study of the same seed is the earlier study, so run the command above first (its `--work`
folders are kept until the same pair runs again); then, 2 x 10 minutes per seed, with a
target of the `mnist-mlp` recording's top 5% (there is no `mnist-cnn` recording):

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.live --spec mnist-cnn \
        --sides hpstudy hpstudy+priors --seeds 2000 2001 2002 --budget 600 --target 0.0599 \
        --priors-from /tmp/hpobench-live/hpstudy-{seed}/study.db \
        --work /tmp/hpobench-live-cnn --out benchmarks/hpobench/live-mnist-cnn-priors.json

(`--sides ray-tune` adds Ray Tune's side to the same file; it needs `pip install
'hpstudy[bench]'`. Ray's start-up counts in its budget: 35-65 s on the loaded 2-core test
machine, where a 120 s digits run first trained at 65 s.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from benchmarks import time_to_target as ttt
from benchmarks.hpobench import live_topk
from benchmarks.hpobench.record import default_path, load

SIDES = ("hpstudy", "plain+trainer", "top-k", "ray-tune", "hpstudy+priors")
PEERS = SIDES[:4]  # the sides without an earlier study (the default)
SEEDS = (2000, 2001, 2002, 2003, 2004)  # reporting seeds: never used to tune anything
FRACTIONS = (0.25, 0.5, 1.0)  # of the budget, where the anytime best is read
DEFAULT_OUT = Path(__file__).resolve().parent / "live-mnist-mlp.json"
RAY_GRACE = 90.0  # seconds past the budget the Ray driver may take to stop its trials


@dataclasses.dataclass(frozen=True)
class LiveRun:
    """One side's run for one seed (see the module for each field)."""

    side: str
    seed: int
    spec: str
    budget_seconds: float
    target: float
    epochs: int
    epochs_to_target: int | None
    seconds_to_target: float | None
    best: dict[str, float | None]  # "0.25", "0.5", "1.0" -> best dev loss by then
    trials: int
    pruned: int
    curve: list[tuple[float, int, float]]
    points: list[dict[str, Any]]  # every epoch: seconds, trial, epoch, dev_loss, dev_accuracy
    load_before: float  # the machine's 1-minute load average before the launch
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # top-k: its n and k

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LiveRun:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields})


def target_of(spec: str, *, quantile: float = 0.05) -> float:
    """The recorded top-`quantile` dev loss of `spec`: the `quantile` quantile over its
    recorded configurations of each one's best dev loss (a configuration with no finite
    epoch counts as infinitely bad)."""
    _, records = load(default_path(spec))
    bests = []
    for record in records:
        losses = [
            e["dev_loss"]
            for e in record["epochs"]
            if (e.get("fraction") or 1.0) >= 1.0 and isinstance(e["dev_loss"], (int, float))
        ]
        finite = [v for v in losses if math.isfinite(v)]
        bests.append(min(finite) if finite else math.inf)
    return float(np.quantile(np.asarray(bests), quantile))


def launch(
    side: str,
    seed: int,
    work: Path,
    *,
    spec: str,
    budget: float,
    n: int,
    k: int,
    priors_from: Path | None = None,
) -> tuple[list[subprocess.Popen[bytes]], Callable[[], list[dict[str, Any]]]]:
    """Starts a side's processes on `spec` without its enqueue; returns them and a function
    reading the epochs they have trained so far."""
    spec_file = str(ttt.without_enqueue(spec, work / "spec.toml", name=f"{spec}-{side}"))
    data = str(ttt.ROOT / "data")
    if side in ("hpstudy", "hpstudy+priors"):
        extra = ["--no-priors"]
        if side == "hpstudy+priors":
            if priors_from is None or not priors_from.is_file():
                raise FileNotFoundError(
                    f"hpstudy+priors needs an earlier study's sqlite file: --priors-from gave "
                    f"{priors_from}, which does not exist (run that study first)"
                )
            shutil.copyfile(priors_from, work / "study.db")
            extra = []
        command = ttt.hpstudy_command(spec_file, work, name=side, seed=seed, extra=extra)
        return [ttt.start(command, work, side)], lambda: ttt.epochs_in_db(
            work / "study.db", study=side
        )
    if side == "plain+trainer":
        commands = ttt.script_commands(
            "plain_optuna_trainer.py", seed, work, extra=["--spec", spec_file]
        )
    elif side == "top-k":
        commands = [
            [
                *(sys.executable, "-m", "benchmarks.hpobench.live_topk", "--work", str(work)),
                *("--spec", spec_file, "--seed", str(2 * seed + index), "--data-dir", data),
                *("--log", str(work / f"epochs-{index}.jsonl"), "--n", str(n), "--k", str(k)),
            ]
            for index in range(2)
        ]
    elif side == "ray-tune":
        deadline = time.time() + budget
        commands = [
            [
                *(sys.executable, "-m", "benchmarks.hpobench.live_ray", "--work", str(work)),
                *("--spec", spec_file, "--seed", str(seed), "--data-dir", data),
                *("--deadline", str(deadline)),
            ]
        ]
    else:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
    processes = [ttt.start(c, work, f"{side}-{i}") for i, c in enumerate(commands)]
    return processes, lambda: ttt.epochs_in_logs(work)


def counts(side: str, work: Path, points: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """Trials started and pruned, from the side's own bookkeeping."""
    if side == "top-k":
        found = live_topk.counts(work)
        return found["trials"], found["pruned"]
    if side == "ray-tune":
        path = work / "trials.json"
        if path.exists():
            found = json.loads(path.read_text())
            return int(found["trials"]), int(found["pruned"])
        return len({p["trial"] for p in points}), 0  # the driver did not end by itself
    engine = sa.create_engine(f"sqlite:///{work / 'study.db'}")
    try:
        with engine.connect() as connection:
            # hpstudy+priors' database holds the earlier study too; plain's study is "plain"
            query = "SELECT t.state, COUNT(*) FROM trials t JOIN studies s "
            query += "ON s.study_id = t.study_id"
            if side in ("hpstudy", "hpstudy+priors"):
                query += " WHERE s.study_name = :side"
            rows = connection.execute(sa.text(query + " GROUP BY t.state"), {"side": side}).all()
    finally:
        engine.dispose()
    states = {str(state).split(".")[-1]: int(count) for state, count in rows}
    return sum(v for s, v in states.items() if s != "WAITING"), states.get("PRUNED", 0)


def summarise(
    points: Sequence[Mapping[str, Any]], *, start: float, budget: float, target: float
) -> dict[str, Any]:
    """The measures of a run's epochs (see the module), those within the budget only."""
    timed = sorted(
        ({**p, "seconds": p["time"] - start} for p in points if p["time"] - start <= budget),
        key=lambda p: p["seconds"],
    )
    best, curve = math.inf, []
    reached: tuple[int, float] | None = None
    for count, point in enumerate(timed, 1):
        loss = point["dev_loss"]
        if loss is None or not math.isfinite(loss) or loss >= best:
            continue
        best = loss
        curve.append((round(point["seconds"], 2), count, loss))
        if reached is None and loss <= target:
            reached = (count, point["seconds"])
    anytime = {
        str(f): min((b for s, _, b in curve if s <= f * budget), default=None) for f in FRACTIONS
    }
    return {
        "epochs": len(timed),
        "epochs_to_target": None if reached is None else reached[0],
        "seconds_to_target": None if reached is None else round(reached[1], 2),
        "best": anytime,
        "curve": curve,
        "points": [
            {k: p[k] for k in ("seconds", "trial", "epoch", "dev_loss", "dev_accuracy")}
            for p in timed
        ],
    }


def measure(
    side: str,
    seed: int,
    work: Path,
    *,
    spec: str,
    budget: float,
    target: float,
    n: int = 20,
    k: int = 3,
    priors_from: Path | None = None,
    poll: float = 2.0,
) -> LiveRun:
    """Runs one side for one seed in the fresh folder `work` for `budget` seconds."""
    load_before = os.getloadavg()[0]
    start = time.time()
    processes, epochs = launch(
        side, seed, work, spec=spec, budget=budget, n=n, k=k, priors_from=priors_from
    )
    # the Ray driver stops its trials at the deadline itself and then writes its counts
    end = start + budget + (RAY_GRACE if side == "ray-tune" else 0.0)
    try:
        while time.time() < end:
            time.sleep(poll)
            if all(p.poll() is not None for p in processes):
                break
    finally:
        ttt.stop(processes, work)
    points = epochs()
    if not points:  # not a result: a side that cannot run must not be skipped next time
        raise RuntimeError(f"{side} (seed {seed}) trained no epoch: see its log in {work}/logs")
    found = summarise(points, start=start, budget=budget, target=target)
    trials, pruned = counts(side, work, points)
    return LiveRun(
        side=side,
        seed=seed,
        spec=spec,
        budget_seconds=budget,
        target=target,
        trials=trials,
        pruned=pruned,
        load_before=round(load_before, 2),
        settings=settings(side, n=n, k=k, priors_from=priors_from),
        **found,
    )


def settings(side: str, *, n: int, k: int, priors_from: Path | None) -> dict[str, Any]:
    """What a side ran with beyond the spec and seed: top-k's n and k, the earlier study."""
    if side == "top-k":
        return {"n": n, "k": k}
    if side == "hpstudy+priors":
        return {"priors_from": str(priors_from)}
    return {}


def run_all(
    sides: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    *,
    spec: str,
    budget: float,
    target: float,
    work: Path,
    n: int = 20,
    k: int = 3,
    priors_from: str | None = None,
    echo: Callable[[str], Any] = print,
) -> list[LiveRun]:
    """Every (side, seed) pair not yet in `out`, seed by seed, saving after each;
    `priors_from`: hpstudy+priors' earlier database, `{seed}` replaced by the seed."""
    results = read(out)
    for seed in seeds:
        for side in sides:
            if any(r.side == side and r.seed == seed and r.spec == spec for r in results):
                continue
            folder = work / f"{side}-{seed}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            earlier = None if priors_from is None else Path(priors_from.format(seed=seed))
            run = measure(
                side,
                seed,
                folder,
                spec=spec,
                budget=budget,
                target=target,
                n=n,
                k=k,
                priors_from=earlier,
            )
            brief = {k: v for k, v in run.to_dict().items() if k not in ("curve", "points")}
            echo(json.dumps(brief))
            results.append(run)
            out.write_text(json.dumps([r.to_dict() for r in results], indent=1))
    return results


def read(out: Path) -> list[LiveRun]:
    """The runs saved in `out` (none if it does not exist)."""
    if not out.exists():
        return []
    return [LiveRun.from_dict(r) for r in json.loads(out.read_text())]


def summary(results: Sequence[LiveRun]) -> str:
    """A markdown table: per side, the median over seeds and (in brackets) each seed's value."""
    sides = [s for s in SIDES if any(r.side == s for r in results)]

    def cell(values: list[float | None], digits: int) -> str:
        # a run that did not reach the target counts as more than any that did (its median
        # is then shown as "> budget" ...); None sorts last
        shown = ", ".join("-" if v is None else f"{v:.{digits}f}" for v in values)
        known = sorted(values, key=lambda v: math.inf if v is None else v)
        middle = known[(len(known) - 1) // 2] if len(known) % 2 else None
        if len(known) % 2 == 0:
            a, b = known[len(known) // 2 - 1], known[len(known) // 2]
            middle = None if a is None or b is None else statistics.mean([a, b])
        head = "-" if middle is None else f"{middle:.{digits}f}"
        return f"{head} ({shown})"

    names = [f"best at {int(100 * f)}%" for f in FRACTIONS]
    lines = [
        "| side | seeds | epochs to target | seconds to target | "
        + " | ".join(names)
        + " | trials (pruned) |",
        "|---|---|---:|---:|" + "---:|" * len(names) + "---:|",
    ]
    for side in sides:
        runs = sorted((r for r in results if r.side == side), key=lambda r: r.seed)
        settings = sorted(
            {f"{r.settings['n']}, {r.settings['k']}" for r in runs if "k" in r.settings}
        )
        row = [
            side + "".join(f" ({s})" for s in settings),
            ", ".join(str(r.seed) for r in runs),
            cell([r.epochs_to_target for r in runs], 0),
            cell([r.seconds_to_target for r in runs], 0),
            *(cell([r.best[str(f)] for r in runs], 4) for f in FRACTIONS),
            ", ".join(f"{r.trials} ({r.pruned})" for r in runs),
        ]
        lines.append("| " + " | ".join(row) + " |")
    targets = sorted({round(r.target, 4) for r in results})
    budgets = sorted({r.budget_seconds for r in results})
    lines.append("")
    lines.append(
        f"Target dev loss {', '.join(map(str, targets))}; budget {', '.join(map(str, budgets))} s "
        "per side and seed; medians over seeds (a run that missed the target counts as the "
        "slowest: '-' where it decides the median), each seed's value in brackets."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="mnist-mlp", help="a built-in spec's name")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(PEERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--budget", type=float, default=600, help="seconds per side and seed")
    parser.add_argument("--target", type=float, help="dev loss (default: the recorded top 5%%)")
    parser.add_argument("--n", type=int, default=20, help="top-k: configurations per batch")
    parser.add_argument("--k", type=int, default=3, help="top-k: of each batch, how many go on")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hpobench-live"))
    parser.add_argument(
        "--priors-from",
        help="hpstudy+priors: the earlier study's sqlite file ({seed} is replaced by the seed)",
    )
    parser.add_argument("--summary", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error(f"--budget must be positive seconds, not {args.budget}")
    if not 1 <= args.k <= args.n:
        parser.error(f"--k must be between 1 and --n ({args.n}), not {args.k}")
    if not args.summary:
        if "hpstudy+priors" in args.sides:
            if args.priors_from is None:
                parser.error("--sides hpstudy+priors needs --priors-from (an earlier study.db)")
            missing = [
                seed
                for seed in args.seeds
                if not Path(args.priors_from.format(seed=seed)).is_file()
            ]
            if missing:
                parser.error(
                    f"--priors-from {args.priors_from}: no such file for seeds "
                    f"{', '.join(map(str, missing))} (run the earlier study first)"
                )
        if not (ttt.SPECS / f"{args.spec}.toml").exists():
            parser.error(f"--spec must name a built-in spec, not {args.spec!r}")
        if args.target is None and not default_path(args.spec).exists():
            parser.error(
                f"no recorded curves of {args.spec} ({default_path(args.spec)}): give --target"
            )
        target = args.target if args.target is not None else target_of(args.spec)
        print(f"{args.spec}: target dev loss {target:.4f}", flush=True)
        run_all(
            args.sides,
            args.seeds,
            args.out,
            spec=args.spec,
            budget=args.budget,
            target=target,
            work=args.work,
            n=args.n,
            k=args.k,
            priors_from=args.priors_from,
        )
    print(summary(read(args.out)))


if __name__ == "__main__":
    main()
