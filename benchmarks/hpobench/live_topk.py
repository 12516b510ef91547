"""One worker process of the live "one epoch, then the top K" side (benchmarks/hpobench/live.py).

Egele et al. 2023 ("Is one epoch all you need?"), as `simulate.TopK` replays it: random
configurations are trained one epoch each; as soon as a batch of `n` has its first epoch, its
best `k` (by that epoch's dev loss) continue to the spec's full epochs (early stopping as the
spec's `[train]` sets it), before any new configuration; the others are dropped (pruned).
Repeated until the process is stopped from outside.

Several processes share one folder (`--work`). Their shared state is `topk.json` there,
read and written only under an exclusive `fcntl` lock on `topk.lock`: every configuration
(its params, its seed, its first epoch's dev loss, what became of it), the batch being
filled and the queue of configurations chosen to continue. A free worker takes the first
configuration in the queue, or else draws a new one: `search_space.suggest` on a `study.ask()`
of its own in-memory study with a `RandomSampler` seeded by `--seed` (each process its own
seed), so the draws are uniform over the spec's space, conditional parameters included.

A configuration's first epoch is `trainer.fit` of its full config (all epochs, so that its
schedule is the one it continues with) with a `FileCheckpoint` in `ckpt/`; the trainer saves
the state after the epoch and the reporter then ends the run. A continued configuration calls
`fit` again with that checkpoint: it resumes after its first epoch (the trainer hands the
restored epoch to `on_epoch` again first; it is not logged twice), so continuing costs no
extra epoch. The checkpoints of dropped configurations are deleted.

Every epoch trained is logged at once as one JSON line (`time`, `trial`, `epoch`, `dev_loss`,
`dev_accuracy`) to `--log`.

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.live_topk --work /tmp/w \\
        --spec w/mnist-mlp.toml --seed 4000 --log /tmp/w/epochs-0.jsonl --data-dir data
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import optuna

from benchmarks.hpobench.record import config_of
from search_space import suggest
from studies import load_spec
from trainer import EpochResult, FileCheckpoint, TrainConfig, fit, load_data

STATE = "topk.json"
LOCK = "topk.lock"


@dataclasses.dataclass(frozen=True)
class Config:
    """One configuration of the side, as the shared state holds it."""

    id: int
    params: dict[str, Any]
    seed: int
    first_loss: float | None = None  # the first epoch's dev loss (inf: not finite)
    # "first" (its first epoch in training), "waiting" (in the batch being filled),
    # "queued" (chosen, not yet taken), "continued" (taken to the end), "dropped"
    fate: str = "first"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Config:
        return cls(**values)


@dataclasses.dataclass
class Shared:
    """The state every worker of one run reads and writes under the lock."""

    configs: list[Config] = dataclasses.field(default_factory=list)

    def queued(self) -> Config | None:
        return next((c for c in self.configs if c.fate == "queued"), None)

    def waiting(self) -> list[Config]:
        return [c for c in self.configs if c.fate == "waiting"]

    def set(self, config: Config) -> None:
        self.configs[config.id] = config

    def finish_first(self, config: Config, loss: float, *, n: int, k: int) -> list[Config]:
        """Records `config`'s first epoch (dev loss `loss`) in the batch being filled; when
        that holds `n`, queues its best `k` (lower loss first; ties: the earlier drawn) and
        drops the others.

        Returns:
            The configurations dropped now.
        """
        self.set(dataclasses.replace(config, first_loss=loss, fate="waiting"))
        batch = self.waiting()
        if len(batch) < n:
            return []
        ranked = sorted(batch, key=lambda c: (c.first_loss, c.id))
        for chosen in ranked[:k]:
            self.set(dataclasses.replace(chosen, fate="queued"))
        dropped = [dataclasses.replace(c, fate="dropped") for c in ranked[k:]]
        for member in dropped:
            self.set(member)
        return dropped

    def to_dict(self) -> dict[str, Any]:
        return {"configs": [c.to_dict() for c in self.configs]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Shared:
        return cls([Config.from_dict(c) for c in values["configs"]])


@contextlib.contextmanager
def shared(work: Path) -> Iterator[Shared]:
    """The shared state, locked for the block and written back at its end (atomically)."""
    with open(work / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = work / STATE
        state = Shared.from_dict(json.loads(path.read_text())) if path.exists() else Shared()
        yield state
        part = path.with_suffix(".part")
        part.write_text(json.dumps(state.to_dict()))
        part.replace(path)


def counts(work: Path) -> dict[str, int]:
    """Configurations started (their first epoch begun) and dropped after it, so far."""
    path = work / STATE
    configs = Shared.from_dict(json.loads(path.read_text())).configs if path.exists() else []
    return {
        "trials": len(configs),
        "pruned": sum(c.fate == "dropped" for c in configs),
    }


class FirstEpochDone(Exception):
    """Ends a configuration's run after its first epoch (its checkpoint is saved)."""


class Worker:
    """Takes the next piece of work from the shared state and trains it, until stopped."""

    def __init__(
        self, *, work: Path, base: TrainConfig, spec_space: Any, seed: int, n: int, k: int, log: Any
    ) -> None:
        self.work, self.base, self.space, self.seed = work, base, spec_space, seed
        self.n, self.k, self.log = n, k, log
        self.data = load_data(base)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        (work / "ckpt").mkdir(exist_ok=True)

    def draw(self) -> dict[str, Any]:
        trial = self.study.ask()
        params = suggest(trial, self.space, base=self.base.to_dict())
        self.study.tell(trial, 0.0)
        return params

    def next(self) -> tuple[Config, bool]:
        """The configuration to train now and whether it continues (else its first epoch)."""
        with shared(self.work) as state:
            chosen = state.queued()
            if chosen is not None:
                chosen = dataclasses.replace(chosen, fate="continued")
                state.set(chosen)
                return chosen, True
            # seeds of the runs: distinct across configurations of one run
            config = Config(
                len(state.configs), self.draw(), seed=self.seed * 1000 + len(state.configs)
            )
            state.configs.append(config)
            return config, False

    def first_done(self, config: Config, loss: float) -> None:
        """Puts a configuration whose first epoch ended into the batch (see `Shared.finish_first`)
        and deletes the checkpoints of those it drops."""
        with shared(self.work) as state:
            for dropped in state.finish_first(config, loss, n=self.n, k=self.k):
                self.checkpoint_path(dropped).unlink(missing_ok=True)

    def checkpoint_path(self, config: Config) -> Path:
        return self.work / "ckpt" / f"{config.id}.pt"

    def train(self, config: Config, *, continued: bool) -> None:
        run = config_of(self.base, config.params, seed=config.seed)
        losses: list[float] = []

        def on_epoch(result: EpochResult) -> None:
            if result.fraction < 1.0:
                return  # a point inside the first epoch: not an epoch
            if not continued or result.epoch > 0:  # a continued run's first epoch is restored
                self.log.write(json.dumps(logged(config.id, result)) + "\n")
                self.log.flush()
            losses.append(result.dev_loss)
            if not continued:
                raise FirstEpochDone

        checkpoint = FileCheckpoint(str(self.checkpoint_path(config)))
        with contextlib.suppress(FirstEpochDone):
            fit(run, self.data, on_epoch=on_epoch, checkpoint=checkpoint)
        if continued:
            self.checkpoint_path(config).unlink(missing_ok=True)
            return
        loss = losses[0] if losses and math.isfinite(losses[0]) else math.inf
        self.first_done(config, loss)

    def loop(self) -> None:
        while True:
            config, continued = self.next()
            self.train(config, continued=continued)


def logged(trial: int, result: EpochResult) -> dict[str, Any]:
    """An epoch's log line, with the keys `time_to_target.epochs_in_logs` reads."""
    loss = result.dev_loss if math.isfinite(result.dev_loss) else None
    return {
        "time": time.time(),
        "trial": trial,
        "epoch": result.epoch,
        "dev_loss": loss,
        "dev_accuracy": result.dev_accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="the folder the side's processes share")
    parser.add_argument("--spec", default="mnist-mlp", help="a built-in spec's name or a file")
    parser.add_argument("--seed", type=int, required=True, help="this process's sampler seed")
    parser.add_argument("--log", required=True, help="JSON lines: one per epoch")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--n", type=int, default=20, help="configurations per batch")
    parser.add_argument("--k", type=int, default=3, help="of each batch, how many continue")
    args = parser.parse_args()
    if not 1 <= args.k <= args.n:
        parser.error(f"--k must be between 1 and --n ({args.n}), not {args.k}")
    spec = load_spec(args.spec)
    with open(args.log, "a") as log:
        Worker(
            work=Path(args.work),
            base=spec.train.replace(data_dir=args.data_dir),
            spec_space=spec.space,
            seed=args.seed,
            n=args.n,
            k=args.k,
            log=log,
        ).loop()


if __name__ == "__main__":
    main()
