"""What hpstudy keeps in a trial's user attributes, as one typed record.

Workers write these attributes while a trial runs and when it ends; export, reproduce, report
and the CLI read them back. `TrialAttrs` names every key once, so a reader and a writer cannot
drift apart, and `chain_root` says which retry chain a trial belongs to (Optuna's own
`failed_trial` system attribute, which a re-queued trial carries).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any, Protocol

from trainer import PretrainEpoch, Status

WORKER_ATTR = "hpstudy:worker"  # system attribute of a running trial: "host:pid" of its worker
WORKER_DIED = "worker died"  # the fail_reason of a trial failed because its worker went silent
# Optuna's own system attributes of a re-queued trial (`RetryFailedTrialCallback`'s names)
FAILED_TRIAL = "failed_trial"  # the number of the first trial of its retry chain
RETRY_HISTORY = "retry_history"  # the numbers of the chain's earlier trials, oldest first


class StopReason(enum.StrEnum):
    """Why a trial's run ended (`TrialAttrs.stop_reason`): the trainer's `Status` of a run
    that ended, or what the study did to it. Members are the strings stored since the first
    version, so old studies read back the same and a member equals its string."""

    COMPLETED = Status.COMPLETED.value
    EARLY_STOPPED = Status.EARLY_STOPPED.value
    DIVERGED = Status.DIVERGED.value
    PRUNED = "pruned"  # the pruner stopped it
    FAILED = "failed"  # an exception; `fail_reason` holds it
    INTERRUPTED = "interrupted"  # a signal stopped its worker; the trial was re-queued

    @classmethod
    def of(cls, status: Status) -> StopReason:
        """The stop reason of a run the trainer ended with `status`.

        Raises:
            ValueError: for `Status.RUNNING`, which is no reason to stop.
        """
        return cls(status.value)

    @classmethod
    def read(cls, stored: Any) -> StopReason | str | None:
        """A stored value as its member; a string this version does not know (a newer
        hpstudy wrote it) stays a string, so reading a study never fails on it."""
        if stored is None:
            return None
        try:
            return cls(stored)
        except ValueError:
            return str(stored)


class _HasUserAttrs(Protocol):
    @property
    def user_attrs(self) -> dict[str, Any]: ...


class _HasSystemAttrs(Protocol):
    @property
    def number(self) -> int: ...

    @property
    def system_attrs(self) -> dict[str, Any]: ...


class _Writable(Protocol):
    def set_user_attr(self, key: str, value: Any) -> None: ...


@dataclasses.dataclass(frozen=True)
class TrialAttrs:
    """The user attributes hpstudy writes to a trial and reads back; None where not written.

    The first group describes what the trial trains (set when it starts); the second how its
    run ended (set when it ends, and dropped when a failed trial is re-queued, so that a retry
    does not look finished).
    """

    # --- what the trial trains ---
    seed: int | None = None  # the trial's training seed (a retry keeps its chain's)
    config: dict[str, Any] | None = None  # the complete TrainConfig, as `to_dict()`
    data: dict[str, Any] | None = None  # the data set's identity: name, fingerprint, sizes
    model: dict[str, Any] | None = None  # a user factory's reference, file and sha256
    standardization: dict[str, Any] | None = None  # feature statistics of the training split
    torch_threads: int | None = None  # CPU results repeat exactly only with this count
    host: str | None = None  # the machine (Ray node) that trained it
    device: str | None = None  # where it trained: "cpu", "cuda:0" (the node's device number)
    warm_start: str | None = None  # where an enqueued configuration came from
    # a prior: the earlier study and trial whose configuration (the part valid in this
    # study's space) was enqueued, {"study": name, "trial": number}
    prior: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None  # init_from and freeze: what was loaded, from where
    # --- how its run ended ---
    stop_reason: StopReason | str | None = None  # a str only for a reason this version lacks
    fail_reason: str | None = None  # the exception, for a failed trial
    epochs_run: int | None = None
    best_epoch: int | None = None  # the epoch model selection kept
    # the network's measured properties (`studies.spec.MEASURES`): params, model_bytes, flops
    # and latency_ms of the network as built, train_seconds of its epochs
    measured: dict[str, float] | None = None
    # folds or repeats > 1: each network's value, their mean and spread, best epochs and the
    # epochs an export retrains for (`trainer.CrossResult.summary`)
    folds: dict[str, Any] | None = None
    diagnosis: tuple[str, ...] = ()  # labels from `studies.analysis.LABELS`
    diagnosis_numbers: dict[str, float] = dataclasses.field(default_factory=dict)
    resumed_from_epoch: int | None = None  # a retry that continued from a checkpoint
    # the unsupervised pre-training before the epochs (`pretrain_epochs`), layer by layer
    pretraining: tuple[PretrainEpoch, ...] = ()

    @property
    def source(self) -> str | None:
        """Where an enqueued configuration came from: "study NAME #N" for a prior, the warm
        start's source otherwise; None for a configuration the sampler drew."""
        if self.prior is not None:
            return f"study {self.prior.get('study')} #{self.prior.get('trial')}"
        return self.warm_start

    @property
    def data_fingerprint(self) -> str | None:
        """The content hash of the data the trial trained on, when the worker stored it."""
        found = (self.data or {}).get("fingerprint")
        return str(found) if found else None

    @property
    def where(self) -> str | None:
        """ "host/cpu", "host/cuda:0": where the trial trained; None when not recorded."""
        if self.host is None and self.device is None:
            return None
        return f"{self.host or '?'}/{self.device or '?'}"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @staticmethod
    def key(name: str) -> str:
        """The attribute key of field `name` (the name itself).

        Raises:
            KeyError: for a name that is not a `TrialAttrs` field.
        """
        if name not in TrialAttrs.names():
            raise KeyError(f"'{name}' is not a TrialAttrs field")
        return name

    @classmethod
    def outcome_keys(cls) -> frozenset[str]:
        """The keys that describe how a run ended; a re-queued trial starts without them."""
        names = cls.names()
        return frozenset(names[names.index("stop_reason") :])

    @classmethod
    def of(cls, trial: _HasUserAttrs) -> TrialAttrs:
        """The record of a trial (frozen or running); missing keys read as their defaults."""
        attrs = trial.user_attrs
        values: dict[str, Any] = {key: attrs[key] for key in cls.names() if key in attrs}
        if "diagnosis" in values:
            values["diagnosis"] = tuple(values["diagnosis"])
        if "stop_reason" in values:
            values["stop_reason"] = StopReason.read(values["stop_reason"])
        if "pretraining" in values:
            values["pretraining"] = tuple(PretrainEpoch.from_dict(r) for r in values["pretraining"])
        return cls(**values)


def write_attrs(trial: _Writable, **values: Any) -> None:
    """Sets user attributes of a running trial by their `TrialAttrs` names.

    Raises:
        KeyError: for a name that is not a `TrialAttrs` field (a typo would silently store
            an attribute nobody reads).
    """
    known = TrialAttrs.names()
    for key, value in values.items():
        if key not in known:
            raise KeyError(f"'{key}' is not a TrialAttrs field")
        trial.set_user_attr(key, _plain(value))


def _plain(value: Any) -> Any:
    """A value as JSON keeps it: a tuple as a list, an enum member as its value."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, PretrainEpoch):
        return value.to_dict()
    return value.value if isinstance(value, enum.Enum) else value


def chain_root(trial: _HasSystemAttrs) -> int:
    """The number of the first trial of `trial`'s retry chain (itself when not a retry).

    Optuna's own `failed_trial` system attribute names it: a re-queued trial carries it.
    """
    return int(trial.system_attrs.get(FAILED_TRIAL, trial.number))


def is_retry(trial: _HasSystemAttrs) -> bool:
    """Whether the trial is a re-queued copy of a failed one."""
    return trial.system_attrs.get(FAILED_TRIAL) is not None


def worker_of(trial: _HasSystemAttrs) -> str:
    """ "host:pid" of the worker running the trial; "" when none is recorded."""
    return str(trial.system_attrs.get(WORKER_ATTR, ""))


def retry_history(trial: _HasSystemAttrs) -> list[int]:
    """The numbers of `trial`'s retry chain so far, oldest first, `trial` last."""
    return [*trial.system_attrs.get(RETRY_HISTORY, []), trial.number]


def retry_system_attrs(trial: _HasSystemAttrs) -> dict[str, Any]:
    """The system attributes of `trial`'s retry: its own without its worker, plus the chain's
    root and `retry_history`, as Optuna's `RetryFailedTrialCallback` writes them."""
    kept = {k: v for k, v in trial.system_attrs.items() if k != WORKER_ATTR}
    return {**kept, FAILED_TRIAL: chain_root(trial), RETRY_HISTORY: retry_history(trial)}


def user_attrs_without_outcome(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A failed trial's user attributes minus how its run ended, for its retry."""
    outcome = TrialAttrs.outcome_keys()
    return {key: value for key, value in attrs.items() if key not in outcome}
