"""Priors from an earlier study, live (issue 28, part 4): real `digits-mlp` studies, 1 worker.

An earlier study (`digits-mlp`, seed `--earlier-seed`) runs once in its own database. Then, for
each seed, the same spec with that seed runs twice, each in its own copy of that database (so
a new study sees only the earlier one): with priors (the default) and with `priors=False`.
For each new study: the epochs trained until the best dev loss first reached `--target` (one
worker, so the trials' epochs add up in trial order; the epoch itself counts), and the best
dev loss at the end (the spec's 30 trials).

From the repository root (niced; 10-25 minutes per study on the shared 2-core machine):

    PYTHONPATH=. nice .venv/bin/python -m benchmarks.priors_live --seeds 1,2,3 \\
        --out benchmarks/priors_live.json
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

import studies
from studies.storage import TrialAttrs

SPEC = "digits-mlp"
TARGET = 0.0650  # the digits-mlp surrogate's top-5% best dev loss (benchmarks/hpobench)


def epochs_to_target(study: optuna.Study, target: float) -> int | None:
    """Epochs trained (in trial order: one worker) until an epoch's dev loss <= `target`."""
    spent = 0
    for trial in sorted(study.trials, key=lambda t: t.number):
        for step in sorted(trial.intermediate_values):
            spent += 1
            if trial.intermediate_values[step] <= target:
                return spent
    return None


def one(db: Path, name: str, seed: int, *, priors: bool) -> dict[str, Any]:
    url = f"sqlite:///{db}"
    study = studies.run(SPEC, name=name, storage=url, seed=seed, priors=priors, progress=False)
    finite = [t.value for t in study.trials if t.value is not None and math.isfinite(t.value)]
    return {
        "seed": seed,
        "priors": priors,
        "epochs_to_target": epochs_to_target(study, TARGET),
        "epochs": sum(len(t.intermediate_values) for t in study.trials),
        "best": min(finite) if finite else None,
        "from_priors": sum(TrialAttrs.of(t).prior is not None for t in study.trials),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--earlier-seed", type=int, default=100)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done: list[dict[str, Any]] = (
        json.loads(args.out.read_text())["runs"] if args.out.exists() else []
    )
    with tempfile.TemporaryDirectory() as folder:
        earlier = Path(folder) / "earlier.db"
        studies.run(
            SPEC,
            name="earlier",
            storage=f"sqlite:///{earlier}",
            seed=args.earlier_seed,
            progress=False,
        )
        for seed in (int(s) for s in args.seeds.split(",")):
            for priors in (True, False):
                if any(r["seed"] == seed and r["priors"] == priors for r in done):
                    continue
                db = Path(folder) / f"{seed}-{priors}.db"
                for part in Path(folder).glob("earlier.db*"):  # with its WAL, if any
                    shutil.copy(part, db.with_name(db.name + part.name[len("earlier.db") :]))
                result = one(db, f"{SPEC}-{seed}", seed, priors=priors)
                done.append(result)
                print(json.dumps(result), flush=True)
                args.out.write_text(
                    json.dumps({"spec": SPEC, "target": TARGET, "runs": done}, indent=1) + "\n"
                )


if __name__ == "__main__":
    main()
