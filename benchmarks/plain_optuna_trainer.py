"""A search written with plain Optuna around hpstudy's own trainer (one worker process).

The third side of the time-to-target comparison (benchmarks/time_to_target.py): the same
space as the built-in `mnist-mlp` spec, drawn with `search_space.suggest` (the space's
definition, nothing more), trained by `trainer.fit` with a callback that reports the dev loss
each epoch, under Optuna's recommended defaults for pruned searches, `TPESampler` and
`HyperbandPruner`, on a `sqlite:///` study shared by the processes. It shows what hpstudy's
search machinery adds beyond its trainer's speed. Each epoch is logged as a JSON line.

    .venv/bin/python benchmarks/plain_optuna_trainer.py --storage sqlite:///p.db \\
        --timeout 600 --log p-0.jsonl --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import optuna
import sqlalchemy as sa

from search_space import nest, suggest
from studies import load_spec
from trainer import EpochResult, fit, load_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", default="plain")
    parser.add_argument("--spec", default="mnist-mlp")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--log", required=True, help="JSON lines: one per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()

    spec = load_spec(args.spec)
    base = spec.train.replace(data_dir=args.data_dir)
    data = load_data(base)
    log = open(args.log, "a")  # noqa: SIM115 - open for the whole run

    def objective(trial: optuna.Trial) -> float:
        values = base.to_dict()
        config = base.replace(**nest(suggest(trial, spec.space, base=values), base=values))

        def on_epoch(result: EpochResult) -> None:
            record = {"time": time.time(), "trial": trial.number, **result.to_dict()}
            log.write(json.dumps({k: record[k] for k in LOGGED}) + "\n")
            log.flush()
            trial.report(result.dev_loss, result.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = fit(config, data, on_epoch=on_epoch)
        if result.best is None:
            raise optuna.TrialPruned("diverged")
        return result.best.dev_loss

    study = create_shared_study(
        study_name=args.study,
        storage=args.storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=optuna.pruners.HyperbandPruner(),
        load_if_exists=True,
    )
    study.optimize(objective, timeout=args.timeout, catch=(ValueError, RuntimeError))


LOGGED = ("time", "trial", "epoch", "dev_accuracy", "dev_loss")


def create_shared_study(*, attempts: int = 20, **kwargs: Any) -> optuna.Study:
    """`optuna.create_study(**kwargs)`, tried again while another process creates the same
    storage: two processes started together on a new sqlite file race to write its schema,
    and the loser's `UNIQUE constraint failed: alembic_version` (or `database is locked`)
    would end it, leaving the side one worker short."""
    for attempt in range(attempts):
        try:
            return optuna.create_study(**kwargs)
        except (sa.exc.IntegrityError, sa.exc.OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.25 * (attempt + 1))
    raise AssertionError("unreachable")


if __name__ == "__main__":
    main()
