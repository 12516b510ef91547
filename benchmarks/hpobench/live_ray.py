"""The live Ray Tune side of benchmarks/hpobench/live.py: ASHA + OptunaSearch, our trainer.

Ray Tune as its documentation sets it up, on a local Ray instance of 2 CPUs (127.0.0.1 only):

- scheduler: `AsyncHyperBandScheduler` with its defaults (one bracket, reduction_factor 4)
  except `max_t` = the spec's epochs and `grace_period` = 1, on `training_iteration`;
- searcher: `OptunaSearch` (its default sampler, a plain `TPESampler` seeded by `--seed`) over
  the spec's space, as a define-by-run function calling `search_space.suggest`, so conditional
  parameters are drawn only where they apply;
- `max_concurrent_trials` 2 (one trial per CPU, one torch thread each), `num_samples` -1
  (trials without end), `time_budget_s` up to `--deadline` (Unix seconds: the launch plus the
  budget, so Ray's start-up counts), `reuse_actors` (each of the 2 actors loads the data once
  and keeps it, as Tune's docs advise for an expensive set-up: MNIST takes seconds to load);
- trainable: `trainer.fit` of the spec's `[train]` with the trial's params laid over (early
  stopping as the spec sets it), whose epoch callback `tune.report`s the dev loss (`loss`)
  after every epoch and logs the epoch as a JSON line to `--work`/epochs-ray-<trial>.jsonl
  (`time`, `trial`, `epoch`, `dev_loss`, `dev_accuracy`).

At the end it writes `--work`/trials.json: `trials` (started) and `pruned` (stopped by the
scheduler before `max_t`: counted where its `on_trial_result` answered STOP).

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 PYTHONPATH=. .venv/bin/python -m \\
        benchmarks.hpobench.live_ray --work /tmp/w --spec w/mnist-mlp.toml --seed 2000 \\
        --deadline $(($(date +%s) + 600)) --data-dir data
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from benchmarks.hpobench.live_topk import logged
from benchmarks.hpobench.record import config_of
from search_space import SearchSpace, suggest
from studies import load_spec
from trainer import Data, EpochResult, TrainConfig, fit, load_data

NUMBER = "_trial_number"  # a config key besides the params, set by `DefineByRun`
_DATA: dict[str, Data] = {}  # per actor process: the data, loaded by its first trial


def trainable(config: dict[str, Any], *, base: TrainConfig, work: str) -> None:
    """One Tune trial: `fit` of `base` with `config` laid over, reporting every epoch."""
    import torch

    torch.set_num_threads(1)
    if "data" not in _DATA:
        _DATA["data"] = load_data(base)
    params = dict(config)
    number = params.pop(NUMBER)
    run = config_of(base, params, seed=base.seed + number)
    log = open(Path(work) / f"epochs-ray-{number}.jsonl", "a")  # noqa: SIM115

    def on_epoch(result: EpochResult) -> None:
        if result.fraction < 1.0:
            return
        log.write(json.dumps(logged(number, result)) + "\n")
        log.flush()
        loss = result.dev_loss if math.isfinite(result.dev_loss) else 1e9
        tune.report({"loss": loss, "dev_accuracy": result.dev_accuracy})

    with log:
        fit(run, _DATA["data"], on_epoch=on_epoch)


class DefineByRun:
    """OptunaSearch's define-by-run function over `space`: the params `suggest` returns, and
    the trial's number from 0 under `NUMBER` (Tune's trial ids are random; the number seeds
    the trial's run). A class, not a closure: Tune pickles its searcher with its state."""

    def __init__(self, space: SearchSpace, base: dict[str, Any]) -> None:
        self.space, self.base = space, base
        self.count = 0

    def __call__(self, trial: Any) -> dict[str, Any]:
        params = suggest(trial, self.space, base=self.base)
        self.count += 1
        return {**params, NUMBER: self.count - 1}


class CountingAsha(AsyncHyperBandScheduler):
    """Ray's scheduler as it is; it only remembers the trials it stopped before `max_t`."""

    def __init__(self, *, max_t: int, **kwargs: Any) -> None:
        super().__init__(max_t=max_t, **kwargs)
        self.max_t = max_t
        self.pruned: set[str] = set()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision: str = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and result["training_iteration"] < self.max_t:
            self.pruned.add(trial.trial_id)
        return decision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True)
    parser.add_argument("--spec", default="mnist-mlp", help="a built-in spec's name or a file")
    parser.add_argument("--seed", type=int, required=True, help="OptunaSearch's seed")
    parser.add_argument("--deadline", type=float, required=True, help="Unix seconds")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")  # as hpstudy's Ray backend runs them
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

    work = Path(args.work).resolve()
    spec = load_spec(args.spec)
    base = spec.train.replace(data_dir=str(Path(args.data_dir).resolve()))
    scheduler = CountingAsha(
        time_attr="training_iteration", metric="loss", mode="min", max_t=base.epochs, grace_period=1
    )
    ray.init(
        address="local",  # a new instance, even where RAY_ADDRESS or a running cluster is
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
    )
    try:
        tuner = tune.Tuner(
            tune.with_parameters(trainable, base=base, work=str(work)),
            tune_config=tune.TuneConfig(
                search_alg=OptunaSearch(
                    space=DefineByRun(spec.space, base.to_dict()),
                    metric="loss",
                    mode="min",
                    seed=args.seed,
                ),
                scheduler=scheduler,
                num_samples=-1,
                max_concurrent_trials=2,
                time_budget_s=max(1.0, args.deadline - time.time()),
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                storage_path=str(work / "ray_results"), name="ray-tune", verbose=0
            ),
        )
        results = tuner.fit()
        started = len(results)
    finally:
        ray.shutdown()
    (work / "trials.json").write_text(
        json.dumps({"trials": started, "pruned": len(scheduler.pruned)})
    )


if __name__ == "__main__":
    main()
