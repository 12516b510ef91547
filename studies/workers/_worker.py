"""One study worker: claims a slot of the budget, runs a trial, repeats.

`hpstudy run --workers N` starts N of these as processes; `hpstudy worker NAME --storage URL`
starts one on any machine that reaches the database.

The worker runs its own ask/run/tell loop instead of `study.optimize`, for three things
Optuna's loop does not do: it takes a re-queued trial without ever creating a new one when the
budget is spent, it ends an interrupted trial FAIL and re-queues it, and it retries a final
state write that meets a lock conflict (through `WorkerStorage`) instead of leaving the
trial RUNNING.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from studies._errors import StudyError
from studies.kept import restore_kept
from studies.spec import make_pruner, make_sampler
from studies.storage import (
    FLUSH_INTERVAL,
    REFRESH,
    WORKER_ATTR,
    Budget,
    BufferedEpochStore,
    Checkpoints,
    DatabaseArtifactStore,
    StopReason,
    TargetRecord,
    WeightStore,
    WorkerStorage,
    chain_root,
    check_code,
    create_engine,
    is_retry,
    is_warm_start,
    load_study,
    open_worker_storage,
    resolve_storage,
    stored_spec,
    write_attrs,
)
from studies.storage._checkpoints import MIN_INTERVAL
from studies.workers._fractions_auto import with_fractions
from studies.workers._halving import EpochHalving
from studies.workers._lr_auto import searched_space, stored_ranges
from studies.workers._objective import Objective, TrialFinisher, store_diagnosis
from studies.workers._preflight import user_code
from studies.workers._publish import TrialPublisher
from studies.workers._recovery import MAX_RETRY, RequeueStale, requeue, worker_id
from studies.workers._signals import Interrupted, Stop

_log = logging.getLogger("hpstudy.worker")

MAX_CONSECUTIVE_FAILURES = 5  # a worker whose trials keep failing stops: it is a bug, not bad luck
IDLE_POLL = 2.0  # seconds between looks at a study whose budget is claimed but not settled


@dataclasses.dataclass
class WorkerOptions:
    """How a worker runs; the study's own settings come from its stored spec."""

    index: int = 0  # distinguishes the workers' sampler seeds
    timeout: float | None = None  # seconds after which no new trial starts
    heartbeat_interval: int | None = None  # seconds; None: the study's (hpstudy run --heartbeat)
    grace_period: int | None = None  # seconds; None: the study's (hpstudy run --grace)
    finishers: Sequence[TrialFinisher] = ()  # extra per-trial hooks (pictures, notes)
    flush_interval: float = FLUSH_INTERVAL  # seconds epoch rows and values may wait; 0: none
    refresh: float = REFRESH  # seconds the view of the other trials may lag; 0: always fresh
    checkpoint_interval: float = MIN_INTERVAL  # seconds between checkpoint writes of a trial
    checkpoints: bool = True  # keep a checkpoint per epoch so a retry resumes


@dataclasses.dataclass
class WorkerSummary:
    trials: int = 0  # trials this worker ran
    failed: int = 0  # of which failed by an exception
    interrupted: bool = False  # stopped by a signal or Ctrl-C; its trial was re-queued
    lock_retries: int = 0  # storage calls retried after a lock conflict

    def line(self, index: int) -> str:
        """The line `hpstudy worker` ends with, which `hpstudy run` reads back (`parse`)."""
        stopped = _STOPPED if self.interrupted else ""
        return f"worker {index}: {self.trials} trials run, {self.failed} failed{stopped}"

    @classmethod
    def parse(cls, line: str) -> WorkerSummary | None:
        """The summary a `line` states; None for any other line."""
        match = _SUMMARY_LINE.match(line)
        if match is None:
            return None
        return cls(int(match[1]), int(match[2]), interrupted=match[3] is not None)


_STOPPED = ", stopped by a signal (its trial re-queued)"
_SUMMARY_LINE = re.compile(rf"^worker \d+: (\d+) trials run, (\d+) failed({re.escape(_STOPPED)})?")


def worker_seed(study_seed: int, index: int) -> int:
    """Each worker's sampler gets its own stream, repeatable for a given study seed."""
    return study_seed + 7919 * index


def run_worker(
    name: str,
    url: str,
    *,
    options: WorkerOptions | None = None,
    stop: threading.Event | None = None,
) -> WorkerSummary:
    """Runs trials of study `name` until its budget is reached, the timeout passes, or `stop`.

    With a `Stop` that handles signals, SIGINT/SIGTERM interrupt the running trial: it ends
    FAIL ("interrupted") and is re-queued, to resume from its checkpoint. Without one, a
    `KeyboardInterrupt` in the running trial (Ctrl-C in a notebook) does the same.

    Args:
        url: the study's database URL, or `env:NAME` for one held by environment variable
            NAME (how `hpstudy run` and Ray hand it over: never in a command line).

    Raises:
        StudyError: for an unknown study, an unreachable storage, or a worker whose trials
            fail again and again.
    """
    url = resolve_storage(url)
    worker = _Worker(name, url, options or WorkerOptions(), stop or threading.Event())
    try:
        return worker.run()
    finally:
        worker.close()


class _Worker:
    def __init__(self, name: str, url: str, options: WorkerOptions, stop: threading.Event) -> None:
        self.options, self.stop = options, stop
        self.stale = RequeueStale(MAX_RETRY)
        self.storage = open_worker_storage(
            url,
            name,
            heartbeat=options.heartbeat_interval,
            grace=options.grace_period,
            stale_trial_callback=self.stale,
            flush_interval=options.flush_interval,
            refresh=options.refresh,
        )
        self.writes = self.storage.writes
        self.spec = stored_spec(self.storage, name, url=url)
        # A factory or data a script or notebook gave as itself is kept in the database.
        restore_kept(url, self.spec.train, study=name)
        study = load_study(self.storage, name, url=url)
        check_code(study, user_code(self.spec))  # the same model code as the other workers
        self.spec = with_fractions(self.spec, study)  # [train] fractions = "auto"
        self.study = load_study(
            self.storage,
            name,
            url=url,
            sampler=make_sampler(
                self.spec.sampler,
                seed=worker_seed(self.spec.seed, options.index),
                space=self.spec.space,
            ),
            # Optuna's pruners judge one objective; several are pruned by `EpochHalving`.
            pruner=make_pruner({"name": "none"} if self.spec.multi else self.spec.pruner),
        )
        self.study_id = self.storage.get_study_id_from_name(name)
        self.engine = create_engine(url)
        self.budget = Budget(self.engine, self.study_id)
        self.budget.ensure(self.study)
        self.stale.on_dropped = lambda _trial: self.budget.release()
        self.target = None
        if self.spec.target is not None:
            self.target = TargetRecord(self.engine, self.study_id, self.spec.target)
        self.checkpoints = Checkpoints(
            self.engine,
            self.study_id,
            writes=self.writes,
            min_interval=options.checkpoint_interval,
        )
        epochs = BufferedEpochStore(self.engine, self.writes)
        halving = None
        if self.spec.multi:
            halving = EpochHalving.from_spec(
                epochs,
                self.study_id,
                metric=self.spec.metric,
                directions=self.spec.directions,
                pruner=self.spec.pruner,
            )
        self.objective = Objective(
            self.spec,
            epochs,
            self.storage,
            finishers=[
                store_diagnosis,
                TrialPublisher(DatabaseArtifactStore(self.engine)),
                *options.finishers,
            ],
            checkpoints=self.checkpoints.for_trial if options.checkpoints else None,
            target=self.target,
            space=searched_space(self.spec, stored_ranges(self.study)),
            halving=halving,
            stop=self.stop,
            weights=WeightStore(
                self.engine,
                self.storage,
                self.study_id,
                maximize=self.spec.direction == "maximize",
            ),
        )
        self.summary = WorkerSummary()

    def run(self) -> WorkerSummary:
        deadline = None if self.options.timeout is None else time.monotonic() + self.options.timeout
        failures_in_a_row = 0
        while not self.stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            trial = self._next_trial()
            if trial is None:
                break
            frozen = self._run_trial(trial)
            self.summary.trials += 1
            if self.summary.interrupted:
                break
            failures_in_a_row = failures_in_a_row + 1 if frozen.state == TrialState.FAIL else 0
            if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                raise StudyError(
                    f"{failures_in_a_row} trials in a row failed; the worker stops. The "
                    f"reasons are in the trials' fail_reason (hpstudy trials {self.spec.name})."
                )
        self.summary.lock_retries = self.storage.retries
        return self.summary

    def close(self) -> None:
        try:
            self.storage.close()
        finally:
            self.engine.dispose()

    # 1. Which trial next: a new one within the budget, or one re-queued.
    def _next_trial(self) -> optuna.Trial | None:
        """A trial to run; None when the budget is spent and no trial may be re-queued, or
        when an epoch reached the study's target."""
        while not self.stop.is_set():
            if self.target is not None and self.target.reached() is not None:
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)  # re-queues dead workers' trials
            n_trials = self.spec.n_trials
            if n_trials is None or self.budget.claim(n_trials):
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="Heartbeat of storage")
                    trial = self.study.ask()  # a re-queued trial first, else a new one
                frozen = self._frozen(trial)
                if is_retry(frozen) or is_warm_start(frozen):
                    # A retry or a warm start waited with its slot already claimed: ours
                    # was one too many.
                    self.budget.release()
                return trial
            waiting = self._pop_waiting()
            if waiting is not None:
                return waiting
            states = (TrialState.RUNNING, TrialState.WAITING)
            if not self.study.get_trials(deepcopy=False, states=states):
                return None
            # Others still run trials; one may die and be re-queued for us to take.
            self.stop.wait(IDLE_POLL)
        return None

    def _pop_waiting(self) -> optuna.Trial | None:
        """Takes a re-queued trial, never creating one (the budget is spent)."""
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        for candidate in waiting:
            trial_id = self._trial_id(candidate.number)
            try:
                if self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    return optuna.Trial(self.study, trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None

    # 2. Run it, with a heartbeat; a stop signal interrupts it.
    def _run_trial(self, trial: optuna.Trial) -> FrozenTrial:
        trial_id = self._trial_id(trial.number)
        self.storage.set_trial_system_attr(trial_id, WORKER_ATTR, worker_id())
        value: float | list[float] | None = None
        state: TrialState | None = None
        with _Heartbeat(self.storage, trial_id):
            try:
                if isinstance(self.stop, Stop):
                    with self.stop.interruptible():
                        value = self.objective(trial)
                else:
                    value = self.objective(trial)
            except optuna.TrialPruned as exc:
                state = TrialState.PRUNED
                _log.info("trial %d pruned: %s", trial.number, exc)
            except KeyboardInterrupt as exc:  # a `Stop`'s `Interrupted`, or a caller's Ctrl-C
                state = TrialState.FAIL
                self.summary.interrupted = True
                why = exc if isinstance(exc, Interrupted) else "KeyboardInterrupt"
                _log.info("trial %d interrupted (%s); it is re-queued", trial.number, why)
            except Exception as exc:
                state = TrialState.FAIL
                _log.warning("trial %d failed: %r", trial.number, exc, exc_info=True)
        if self.summary.interrupted:
            write_attrs(
                trial, stop_reason=StopReason.INTERRUPTED, fail_reason=StopReason.INTERRUPTED
            )
        try:
            if self._frozen(trial).state != TrialState.RUNNING:
                raise optuna.exceptions.UpdateFinishedTrialError(str(trial.number))
            frozen = self.study.tell(trial, value, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:
            # Our heartbeats were late: another worker failed the trial and re-queued it, with
            # its slot and its checkpoint. Nothing is ours to settle.
            _log.warning("trial %d was failed as stale by another worker", trial.number)
            return self._frozen(trial)
        if frozen.state == TrialState.COMPLETE:
            _log.info("trial %d complete: %s", trial.number, frozen.values)
        self._settle(frozen)
        return frozen

    # 3. Settle its slot of the budget and its checkpoint.
    def _settle(self, trial: FrozenTrial) -> None:
        root = chain_root(trial)
        if trial.state != TrialState.FAIL:
            self.checkpoints.finish(root)
            return
        if self.summary.interrupted:
            self.checkpoints.keep(root)
            if requeue(self.study, trial, max_retry=None):
                return  # the retry keeps the slot and the checkpoint
        self.summary.failed += 1
        self.budget.release()
        self.checkpoints.finish(root)

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def _frozen(self, trial: optuna.Trial) -> FrozenTrial:
        return self.storage.get_trial(self._trial_id(trial.number))


class _Heartbeat:
    """Records a running trial's heartbeat every interval, from a thread."""

    def __init__(self, storage: WorkerStorage, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.interval = storage.get_heartbeat_interval()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Heartbeat:
        if self.interval:
            self._thread = threading.Thread(
                target=self._beat, name="hpstudy-heartbeat", daemon=True
            )
            self._thread.start()
        return self

    def _beat(self) -> None:
        assert self.interval is not None
        while True:
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # a missed beat is not fatal; many are (grace period)
                _log.warning("heartbeat of trial id %d failed: %s", self.trial_id, exc)
            if self._done.wait(self.interval):
                return

    def __exit__(self, *_exc: Any) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
