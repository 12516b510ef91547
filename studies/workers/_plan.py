"""`hpstudy plan`: what fits in a time budget, from a probe epoch timed on this machine.

The probe trains one sample of the space (what a first trial would train) on a share of the
training set with the thread count each worker would get, and scales the time to a whole
epoch, and to the folds x repeats networks each trial of a cross-validated spec trains.
From it: the epochs the budget holds over all workers, and how many trials that makes
without pruning and with the spec's pruner, whose expected epochs per trial follow from its
settings (successive halving: a trial stopped at rung k trained min_resource * eta^k + 1
epochs, and about eta^-k of the trials reach rung k; with `[train] fractions`, whose steps
count the smallest fraction, min_resource * eta^k of those).

The probe's dev evaluation is timed apart from its training, so that the plan can show what
each rung inside the first epoch costs (`[train] fractions`), or propose fractions whose dev
evaluations stay a small share of each rung's cost (see `_rungs`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

from studies.spec import StudySpec
from studies.workers._preflight import one_sample
from studies.workers._processes import threads_per_worker
from studies.workers._rungs import DEV_SHARE, propose_fractions, rung_costs, schedule_text

STARTUP = 15.0  # seconds a worker process needs before its first epoch (imports, data)
PROBE_SHARE = 0.2  # share of the training set the probe epoch trains on (at least 50 batches)
DEV_REPEATS = 3  # dev evaluations timed after the probe, for a steadier figure


@dataclasses.dataclass(frozen=True)
class Plan:
    """What fits in a budget."""

    epoch_seconds: float  # one epoch of the probed config, per worker
    threads: int  # torch threads per worker
    budget: float  # seconds
    workers: int
    epochs: int  # epochs the budget holds over all workers
    max_epochs: int  # the spec's epochs per trial
    epochs_per_trial: float  # expected with the spec's pruner
    pruner: str
    networks: int = 1  # networks a trial trains in lock-step: folds x repeats
    # one network's epoch, apart: training the split once, and one dev evaluation
    train_seconds: float = 0.0
    dev_seconds: float = 0.0
    # fractions of the first epoch whose rungs keep their dev evaluations small (for a spec
    # without `fractions`); () when none does
    proposed: tuple[float, ...] = ()

    @property
    def trials_unpruned(self) -> int:
        return int(self.epochs // self.max_epochs)

    @property
    def trials(self) -> int:
        return int(self.epochs // self.epochs_per_trial)

    def minutes_for(self, trials: int) -> float:
        epochs = trials * self.epochs_per_trial
        return (epochs * self.epoch_seconds / self.workers + STARTUP) / 60

    def rung_lines(self, spec: StudySpec) -> list[str]:
        """The dev evaluation's cost, and the rungs inside the first epoch: the spec's
        `fractions` with their costs, or proposed ones."""
        out = [
            f"of it, training takes {self.train_seconds:.2f} s and one dev evaluation "
            f"{self.dev_seconds:.2f} s (one network)"
        ]
        fractions = spec.train.fractions
        if fractions:
            rungs = rung_costs(fractions, train=self.train_seconds, dev=self.dev_seconds)
            out.append(
                f"rungs inside the first epoch ([train] fractions; a trial's steps count "
                f"{fractions[0]:.3g} of an epoch): {schedule_text(rungs)}"
            )
        elif self.proposed and spec.fractions_auto:
            rungs = rung_costs(self.proposed, train=self.train_seconds, dev=self.dev_seconds)
            shown = ", ".join(f"{f:g}" for f in self.proposed)
            out.append(
                f'fractions = "auto" would choose [{shown}] of the first epoch (a run times '
                f"them again with its workers): {schedule_text(rungs)}"
            )
        elif self.proposed:
            rungs = rung_costs(self.proposed, train=self.train_seconds, dev=self.dev_seconds)
            shown = ", ".join(f"{f:g}" for f in self.proposed)
            out.append(
                f"option: fractions = [{shown}] in [train] puts the pruner's lowest rungs inside "
                f"the first epoch, each rung's dev evaluations at most {DEV_SHARE:.0%} of its "
                f"cost: {schedule_text(rungs)}; with min_resource = 1 the first rung is at "
                f"{self.proposed[0]:g} of an epoch (cheaper rungs, but on recorded MNIST "
                f"curves they stopped the best configurations more often than whole epochs do)"
            )
        else:
            out.append(
                "no rungs inside the first epoch are proposed: a dev evaluation would be more "
                f"than {DEV_SHARE:.0%} of the cost of even 1/3 of an epoch (or 1/3 of the "
                f"training split is less than a batch)"
            )
        return out

    def lines(self, spec: StudySpec) -> list[str]:
        out = [
            f"a probe epoch of '{spec.name}' ({spec.train.dataset}, model {spec.train.model}) "
            f"takes about {self.epoch_seconds:.1f} s with {self.threads} torch thread(s) per "
            f"worker",
        ]
        out += self.rung_lines(spec)
        if self.networks > 1:
            out.append(
                f"that is {self.networks} networks' epochs: each trial trains folds x repeats = "
                f"{spec.train.folds} x {spec.train.repeats} networks, {self.networks} times the "
                f"cost of one"
            )
        out += [
            f"{_duration(self.budget)} x {self.workers} worker(s) hold about {self.epochs} "
            f"epochs: {self.trials_unpruned} trials of {self.max_epochs} epochs without pruning, "
            f"about {self.trials} with {self.pruner} ({self.epochs_per_trial:.1f} epochs a trial "
            f"on average)",
        ]
        if spec.n_trials:
            out.append(
                f"the spec's {spec.n_trials} trials need about "
                f"{self.minutes_for(spec.n_trials):.0f} min with {self.workers} worker(s)"
            )
        advice = pruner_advice(spec.pruner, self.max_epochs, self.trials_unpruned)
        if advice:
            out.append(advice)
        return out


def plan(spec: StudySpec, *, budget: float, workers: int) -> Plan:
    """Times a probe epoch here and says what `budget` seconds with `workers` workers hold."""
    threads = threads_per_worker(workers)
    networks = spec.train.folds * spec.train.repeats
    probe = probe_costs(spec, threads=threads)
    seconds = probe.epoch * networks
    usable = max(0.0, budget - STARTUP) * workers
    epochs = int(usable // seconds)
    fractions = spec.train.fractions
    eta = int(spec.pruner.get("reduction_factor", 3))
    proposed = propose_fractions(
        train=probe.train,
        dev=probe.dev,
        reduction_factor=max(eta, 2),
        rows=probe.rows,
        batch_size=spec.train.batch_size,
    )
    return Plan(
        epoch_seconds=seconds,
        threads=threads,
        budget=budget,
        workers=workers,
        epochs=epochs,
        max_epochs=spec.train.epochs,
        epochs_per_trial=expected_epochs(
            spec.pruner, spec.train.epochs, unit=fractions[0] if fractions else None
        ),
        pruner=describe_pruner(spec.pruner),
        networks=networks,
        train_seconds=probe.train,
        dev_seconds=probe.dev,
        proposed=() if fractions else proposed,
    )


@dataclasses.dataclass(frozen=True)
class Probe:
    """What one network's epoch costs, from a timed probe."""

    train: float  # seconds to train the whole training split once
    dev: float  # seconds of one dev evaluation
    rows: int  # training rows of one network

    @property
    def epoch(self) -> float:
        """An epoch with its dev evaluation (the first epoch's extra evaluations at its
        fractions are left out: spread over a trial's epochs they are small)."""
        return self.train + self.dev


def probe_costs(spec: StudySpec, *, threads: int) -> Probe:
    """Seconds one whole epoch of one network of a sampled config takes to train, scaled
    from a timed share of one (with folds, of one fold's training rows), and seconds of one
    evaluation of its dev split (with folds, of one fold's)."""
    import torch

    from trainer import evaluate, fit, load_data

    config = one_sample(spec)
    data = load_data(config, search_path=spec.search_path)
    full = len(data.y_train)  # with folds > 1: the whole training split the folds cut
    dev_rows = full // config.folds if config.folds > 1 else len(data.y_dev)
    full -= full // config.folds if config.folds > 1 else 0
    share = min(full, max(50 * config.batch_size, int(full * PROBE_SHARE)))
    probe = config.replace(epochs=1, patience=0, train_size=share, folds=1, repeats=1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fit(probe, load_data(probe, search_path=spec.search_path), search_path=spec.search_path)
        probe_data = load_data(probe, search_path=spec.search_path)
        started = time.perf_counter()
        result = fit(probe, probe_data, search_path=spec.search_path)
        seconds = time.perf_counter() - started
        dev = 0.0
        if len(probe_data.y_dev):
            started = time.perf_counter()
            for _ in range(DEV_REPEATS):
                evaluate(
                    result.model,
                    probe_data.x_dev,
                    probe_data.y_dev,
                    task=probe_data.task,
                    target_std=probe_data.target_std,
                )
            dev = (time.perf_counter() - started) / DEV_REPEATS
    finally:
        torch.set_num_threads(before)
    train = max(seconds - dev, 0.0) * full / share
    if len(probe_data.y_dev):
        dev *= dev_rows / len(probe_data.y_dev)
    return Probe(train=train, dev=dev, rows=full)


def expected_epochs(
    pruner: Mapping[str, Any], max_epochs: int, *, unit: float | None = None
) -> float:
    """Epochs a trial trains on average under `pruner` (the spec's entry), roughly.

    Args:
        unit: with `[train] fractions`, the smallest one: a step then counts that share of an
            epoch trained (`report_step`), not an epoch.
    """
    name = pruner.get("name")
    if name in ("successive_halving", "hyperband", "extrapolate"):
        eta = int(pruner.get("reduction_factor", 4 if name == "successive_halving" else 3))
        low = pruner.get("min_resource", 1)
        low = 1 if not isinstance(low, int) else low
        halving = _halving_epochs(max_epochs, low, eta, unit=unit)
        if name == "extrapolate":
            # it stops a trial only where halving would and its forecast agrees: between
            # halving's epochs and none; on the recorded curves it saved 48-53% of the
            # epochs (RESULTS.md, issue 28 part 3), so half of what no pruning trains,
            # never less than halving
            return max(halving, max_epochs * (1 - EXTRAPOLATE_SAVED))
        return halving
    if name in ("median", "percentile"):
        # Half the trials stopped at the end of the warm-up (the step is the epochs
        # trained, `report_step`), once the first few have finished.
        first = max(1, int(pruner.get("n_warmup_steps", 0)))
        return (max_epochs + min(max_epochs, first * (unit or 1.0))) / 2
    return float(max_epochs)


# the share of epochs the extrapolate pruner saved against no pruning, replayed on issue 28's
# recorded curves (48.5% on digits-mlp, 52.9% on mnist-mlp)
EXTRAPOLATE_SAVED = 0.5


def _halving_epochs(max_epochs: int, low: int, eta: int, *, unit: float | None = None) -> float:
    expected, reach = 0.0, 1.0
    rung = 0
    while True:
        step = low * eta**rung  # the step at which rung `rung` decides
        # epochs trained then: the step is the epochs trained (`report_step`), in units of
        # the smallest fraction where the config has fractions
        trained = step * (unit or 1.0)
        if trained >= max_epochs:
            return expected + reach * max_epochs
        stop = reach * (1 - 1 / eta)  # stopped at this rung
        expected += stop * trained
        reach /= eta
        rung += 1


def describe_pruner(pruner: Mapping[str, Any]) -> str:
    settings = ", ".join(f"{k} {v}" for k, v in pruner.items() if k != "name")
    return f"the {pruner.get('name')} pruner" + (f" ({settings})" if settings else "")


def pruner_advice(pruner: Mapping[str, Any], max_epochs: int, trials_unpruned: int) -> str:
    """A settings hint when the budget is tight for the spec's pruner."""
    name = pruner.get("name")
    if trials_unpruned < 10 and name not in ("successive_halving", "hyperband", "extrapolate"):
        return (
            "advice: fewer than 10 unpruned trials fit; asynchronous successive halving stops "
            "hopeless trials after their first epochs from the second trial on: pruner = "
            '{ name = "successive_halving", min_resource = 1, reduction_factor = 3 }'
        )
    if name == "successive_halving" and pruner.get("min_resource", "auto") == "auto":
        return (
            "advice: min_resource 'auto' waits for a finished trial before pruning anything; "
            "min_resource = 1 prunes from the second trial on"
        )
    return ""


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def parse_budget(text: str) -> float:
    """Seconds from '30m', '1.5h', '90s' or a bare number of seconds.

    Raises:
        ValueError: for anything else.
    """
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    factor = units.get(text[-1:])
    number = text[:-1] if factor else text
    value = float(number) * (factor or 1)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(text)
    return value
