"""`cross_fit`: k-fold cross-validation and repeated seeds, the networks trained in lock-step.

A config with `folds` = k > 1 trains one network per fold of the training split (stratified
for classification, shuffled with `split_seed`; the test split is never touched); `repeats` = r
trains each fold r times with different seeds (repeat 0 keeps the config's seed). The k * r
networks ("members") train in lock-step: one epoch of each, then one merged `EpochResult` goes
to `on_epoch`, its metrics the mean over the members that trained that epoch (a member that
stopped early leaves the mean). So a caller sees one curve, as from `fit`, and can stop every
member at once by raising from `on_epoch` (pruning).

Each member is exactly the run `fit` would make of its fold alone: the global torch random
state (dropout) is swapped per member, so interleaving changes nothing. A fold's inputs (and a
standardised regression's targets) are standardised again with statistics of the fold's own
training rows (`FoldScaling`), so its dev rows play no part in them, as the test split plays
none in the whole split's.

A checkpoint holds every member's state, written once per lock-step round; a resumed run
continues every member after the last round saved. A checkpoint of another config, or of
another number of members, is refused, never mixed in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer._config import TrainConfig
from trainer._data import Data, load_data, resolve_device
from trainer._errors import ConfigError
from trainer._fit import CheckpointStore, FitResult, Training
from trainer._records import EpochResult, PretrainEpoch
from trainer._status import Status

# Repeat r trains with seed + r * REPEAT_SEED_STEP: far from the seeds of neighbouring trials
# (a study's trial seeds step by 1), so a repeat is not another trial's network again.
REPEAT_SEED_STEP = 104_729


def fold_indices(
    y: np.ndarray, folds: int, *, task: str, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, dev rows) of each fold of `y`: stratified by class for classification,
    plain for regression, shuffled with `seed`.

    Raises:
        ConfigError: for more folds than the smallest class has examples (or than there are
            examples), naming the class and the largest `folds` that works.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(y)
    if task == "classification":
        classes, counts = np.unique(y, return_counts=True)
        smallest = int(counts.min())
        if folds > smallest:
            label = int(classes[counts.argmin()])
            raise ConfigError(
                [
                    f"folds = {folds} is more than class {label} has training examples "
                    f"({smallest}): every fold needs each class; choose folds <= {smallest}"
                ]
            )
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        if folds > len(y):
            raise ConfigError(
                [f"folds = {folds} is more than the {len(y)} training examples; choose fewer"]
            )
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(train, dev) for train, dev in splitter.split(np.zeros(len(y)), y)]


def member_seed(seed: int, repeat: int) -> int:
    """The seed of repeat `repeat`; repeat 0 keeps `seed`."""
    return (seed + repeat * REPEAT_SEED_STEP) % (2**31)


@dataclasses.dataclass
class CrossResult:
    """The outcome of `cross_fit`: the merged curve and every member's own `FitResult`.

    Members are ordered repeat by repeat, fold by fold: member i is repeat i // folds, fold
    i % folds.
    """

    status: Status  # diverged if a member diverged, completed if all did, else early_stopped
    epochs: list[EpochResult]  # the merged curve, one entry per lock-step round of an epoch
    members: list[FitResult]
    folds: int
    repeats: int
    seconds: float
    # the merged partial points of the first epoch (`TrainConfig.fractions`); not in `epochs`
    partials: list[EpochResult] = dataclasses.field(default_factory=list)
    # each member's fold standardisation, relative to the whole split's (member order)
    scalings: list[FoldScaling] = dataclasses.field(default_factory=list)
    # the training split's rows over one fold's training rows: how much longer an epoch of
    # the whole split is than a member's (folds / (folds - 1), or 1 / (1 - dev_fraction))
    growth: float = 1.0
    task: str = "classification"

    def values(self, metric: str) -> list[float]:
        """Each member's `metric` at its best epoch (model selection); NaN for a member
        without one."""
        return [m.best.metric(metric) if m.best is not None else math.nan for m in self.members]

    def value(self, metric: str) -> float:
        """The mean over the members of their best-epoch `metric`: a trial's value."""
        return statistics.fmean(self.values(metric))

    @property
    def best_epochs(self) -> list[int | None]:
        return [m.best_epoch for m in self.members]

    def refit_epochs(self) -> int:
        """Epochs a network trained on the whole training split gets: the median over the
        members of the epochs to their best one (best epoch + 1), times `growth` (the same
        number of optimiser steps, on an epoch that many times longer), rounded up."""
        found = [e + 1 for e in self.best_epochs if e is not None]
        if not found:
            return len(self.epochs)
        return math.ceil(statistics.median(found) * self.growth - 1e-9)

    def summary(self, metric: str) -> dict[str, Any]:
        """JSON-ready: the members' values, their mean and spread, best epochs, refit epochs."""
        values = self.values(metric)
        return {
            "folds": self.folds,
            "repeats": self.repeats,
            "metric": metric,
            "values": values,
            "mean": statistics.fmean(values),
            "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
            "best_epochs": self.best_epochs,
            "refit_epochs": self.refit_epochs(),
            # each member's dev loss per epoch: the curves the merged one averages
            "curves": [[round(e.dev_loss, 6) for e in m.epochs] for m in self.members],
        }


def cross_fit(
    config: TrainConfig,
    data: Data | None = None,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    checkpoint: CheckpointStore | None = None,
    search_path: Sequence[str | Path] = (),
    on_pretrain: Callable[[PretrainEpoch], None] | None = None,
) -> CrossResult:
    """Trains `config`'s folds x repeats networks in lock-step; see the module docstring.

    Args:
        config: the run; `folds` and `repeats` say how many networks.
        data: loaded from the config when None; with folds > 1 its training split is the
            whole pool the folds are cut from (`load_data` gives that for such a config).
        on_epoch: called once per round with the merged result; it may end every member's
            run by raising.
        checkpoint: every member's state, saved after each round; a saved state resumes.
        search_path: as for `fit`.
        on_pretrain: called after each pre-training epoch of each member (`pretrain_epochs`;
            members pre-train in turn when they are built, before the first round), with the
            record's `member` set to the member's index.

    Raises:
        ConfigError: more folds than the smallest class has training examples.
        ValueError: the checkpoint belongs to another config (as in `fit`).
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    data = (load_data(config, search_path=search_path) if data is None else data).to(device)
    splits, scalings = _fold_data(config, data)
    store = _MembersCheckpoint(checkpoint, config, len(splits) * config.repeats)
    rng = _RandomStates(device)
    trainings: list[Training] = []
    for repeat in range(config.repeats):
        member = config.replace(folds=1, repeats=1, seed=member_seed(config.seed, repeat))
        for fold_data in splits:
            with rng.own(len(trainings)):
                trainings.append(
                    Training(
                        member,
                        fold_data,
                        checkpoint=store.member(len(trainings)),
                        search_path=search_path,
                        on_pretrain=_of_member(on_pretrain, len(trainings)),
                    )
                )
    merged: list[EpochResult] = []
    while True:
        row, stepped = [], False
        for i, training in enumerate(trainings):
            if len(merged) < len(training.history):  # restored from the checkpoint
                row.append(training.history[len(merged)])
            elif training.status == Status.RUNNING:
                with rng.own(i):
                    row.append(training.step())
                stepped = True
        if not row:
            break
        merged.append(merge_epochs(row[0].epoch, row))
        if stepped and not merged[-1].partial:  # members save whole epochs only
            store.flush()
        if on_epoch is not None:
            on_epoch(merged[-1])
        if any(t.status == Status.DIVERGED for t in trainings):
            break  # the trial is lost; the other members need not train on
    members = [t.result(started=started) for t in trainings]
    statuses = {m.status for m in members}
    status = (
        Status.DIVERGED
        if Status.DIVERGED in statuses
        else Status.COMPLETED
        if statuses == {Status.COMPLETED}
        else Status.EARLY_STOPPED
    )
    return CrossResult(
        status=status,
        epochs=[e for e in merged if not e.partial],
        members=members,
        folds=config.folds,
        repeats=config.repeats,
        seconds=time.perf_counter() - started,
        partials=[e for e in merged if e.partial],
        scalings=scalings * config.repeats,
        growth=_growth(config, data, splits[0]),
        task=config.task,
    )


def _of_member(
    on_pretrain: Callable[[PretrainEpoch], None] | None, member: int
) -> Callable[[PretrainEpoch], None] | None:
    """`on_pretrain` for member `member`: its records carry the member's index."""
    if on_pretrain is None:
        return None
    return lambda record: on_pretrain(dataclasses.replace(record, member=member))


def merge_epochs(epoch: int, results: Sequence[EpochResult]) -> EpochResult:
    """One `EpochResult` for a round: the members' mean of every metric, of lr, of gradient
    norms and of the fraction trained (partial points: the folds differ by a row or so), the
    largest gradient norm, the summed seconds, the latest finish."""

    def mean(name: str) -> float:
        return statistics.fmean(float(getattr(r, name)) for r in results)

    layers = results[0].grad_norm_mean.keys()
    return EpochResult(
        epoch=epoch,
        train_loss=mean("train_loss"),
        train_accuracy=mean("train_accuracy"),
        dev_loss=mean("dev_loss"),
        dev_accuracy=mean("dev_accuracy"),
        dev_rmse=mean("dev_rmse"),
        dev_r2=mean("dev_r2"),
        lr=mean("lr"),
        grad_norm_mean={k: statistics.fmean(r.grad_norm_mean[k] for r in results) for k in layers},
        grad_norm_max={k: max(r.grad_norm_max[k] for r in results) for k in layers},
        seconds=sum(r.seconds for r in results),
        finished_at=max(r.finished_at for r in results),
        fraction=mean("fraction"),
    )


@dataclasses.dataclass(frozen=True)
class FoldScaling:
    """A fold's standardisation, applied on top of the whole split's: the fold's inputs are
    (x - x_shift) / x_scale and its targets (y - y_shift) / y_scale, where x and y are the
    split's standardised tensors and the shifts and scales are the mean and deviation of the
    fold's training rows (identity for targets a classification or an unstandardised
    regression keeps). Composed with the split's statistics, this is the fold's training rows'
    own standardisation: its dev rows take no part. (A feature constant on the fold's
    training rows keeps the whole split's scale: it is 0 there after centring whatever the
    scale, and its dev values stay in the units the split gave them.)
    """

    x_shift: torch.Tensor  # input shape
    x_scale: torch.Tensor  # input shape
    y_shift: torch.Tensor  # (outputs,)
    y_scale: torch.Tensor  # (outputs,)

    @classmethod
    def identity(cls, data: Data) -> FoldScaling:
        x = torch.zeros(data.input_shape, device=data.x_train.device)
        y = torch.zeros(data.outputs, device=data.x_train.device)
        return cls(x, x + 1, y, y + 1)

    @classmethod
    def of(cls, data: Data, train: torch.Tensor) -> FoldScaling:
        """The scaling that standardises `data`'s training rows `train` as the whole split's
        statistics (`Data.standardization`: global or per feature) were fitted; the identity
        for data that holds no statistics (tensors made by hand, not by `load_data`): nothing
        was standardised to fit again."""
        stats = data.standardization
        if stats is None:
            return cls.identity(data)
        x = data.x_train.index_select(0, train).double()
        if stats.get("per_feature"):
            x_shift, x_scale = _columns(x)
        else:
            x_shift = x.mean().expand(data.input_shape)
            x_scale = x.std(correction=0) if x.numel() > 1 else torch.ones((), device=x.device)
            x_scale = torch.where(x_scale > 0, x_scale, 1.0).expand(data.input_shape)
        if data.task == "regression" and "y_mean" in stats:
            y_shift, y_scale = _columns(data.y_train.index_select(0, train).double())
        else:
            y_shift = torch.zeros(data.outputs, device=x.device, dtype=torch.float64)
            y_scale = y_shift + 1
        return cls(*(t.float().contiguous() for t in (x_shift, x_scale, y_shift, y_scale)))

    def apply(self, data: Data, train: torch.Tensor, dev: torch.Tensor) -> Data:
        """The fold's `Data`: rows `train` train, rows `dev` of the training split are its dev
        split, both (and unlabelled inputs) in the fold's standardisation."""

        def x(t: torch.Tensor) -> torch.Tensor:
            return (t - self.x_shift) / self.x_scale

        def y(t: torch.Tensor) -> torch.Tensor:
            if data.task != "regression":
                return t
            return ((t - self.y_shift) / self.y_scale).reshape(t.shape)

        unlabeled = data.x_unlabeled
        return dataclasses.replace(
            data,
            x_train=x(data.x_train.index_select(0, train)),
            y_train=y(data.y_train.index_select(0, train)),
            x_dev=x(data.x_train.index_select(0, dev)),
            y_dev=y(data.y_train.index_select(0, dev)),
            x_unlabeled=None if unlabeled is None else x(unlabeled),
            standardization=self.compose(data.standardization),
        )

    def compose(self, stats: dict[str, Any] | None) -> dict[str, Any] | None:
        """The fold's statistics in the raw data's terms (`Data.standardization`'s form): the
        split's mean plus its deviation times the shift, its deviation times the scale."""
        if stats is None:
            return None
        out = dict(stats)
        for prefix, shift, scale in (
            ("x", self.x_shift, self.x_scale),
            ("y", self.y_shift, self.y_scale),
        ):
            if f"{prefix}_mean" not in stats:
                continue
            mean = np.asarray(stats[f"{prefix}_mean"], dtype=np.float64)
            std = np.asarray(stats[f"{prefix}_std"], dtype=np.float64)
            s, c = shift.double().cpu().numpy(), scale.double().cpu().numpy()
            if mean.ndim == 0:  # global statistics: one number, as the split's
                s, c = s.reshape(-1)[:1].reshape(()), c.reshape(-1)[:1].reshape(())
            out[f"{prefix}_mean"] = (mean + std * s).tolist()
            out[f"{prefix}_std"] = (std * c).tolist()
        return out


def _columns(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and deviation over the rows; deviation 1 for a constant column (as
    `fit_stats` gives it)."""
    mean = values.mean(dim=0)
    std = values.std(dim=0, correction=0) if len(values) > 1 else torch.ones_like(mean)
    constant = values.amax(dim=0) == values.amin(dim=0)
    return mean, torch.where(constant, torch.ones_like(std), std)


def _fold_data(config: TrainConfig, data: Data) -> tuple[list[Data], list[FoldScaling]]:
    """Each fold's `Data` (its train and dev rows of the training split, standardised with
    its training rows' statistics) and that scaling (folds = 1: `data` and the identity)."""
    if config.folds == 1:
        return [data], [FoldScaling.identity(data)]
    rows = fold_indices(
        data.y_train.cpu().numpy(), config.folds, task=config.task, seed=config.split_seed
    )
    out, scalings = [], []
    for train, dev in rows:
        t = torch.from_numpy(train).to(data.x_train.device)
        d = torch.from_numpy(dev).to(data.x_train.device)
        scaling = FoldScaling.of(data, t)
        scalings.append(scaling)
        out.append(scaling.apply(data, t, d))
    return out, scalings


def _growth(config: TrainConfig, data: Data, member: Data) -> float:
    """Rows of the whole training split (train and dev, as a refit trains on them) over a
    member's training rows."""
    whole = len(data.y_train) + (len(data.y_dev) if config.folds == 1 else 0)
    return whole / max(1, len(member.y_train))


class _RandomStates:
    """The global torch random state (dropout draws from it) kept per member, so that
    training members in turn gives each the numbers it would draw alone."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.states: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}

    @contextlib.contextmanager
    def own(self, member: int) -> Iterator[None]:
        saved = self.states.get(member)
        if saved is not None:
            torch.set_rng_state(saved[0])
            if saved[1] is not None:
                torch.cuda.set_rng_state(saved[1], self.device)
        yield
        cuda = torch.cuda.get_rng_state(self.device) if self.cuda else None
        self.states[member] = (torch.get_rng_state(), cuda)


class _MembersCheckpoint:
    """One `CheckpointStore` holding every member's state: {"config", "epochs", "members"}.

    Members save into memory; `flush` writes all of them at once, after a round, so that a
    resumed run finds every member at the same epoch. ("epochs" is the first member's list,
    which stores that count saved epochs by.)
    """

    def __init__(self, store: CheckpointStore | None, config: TrainConfig, count: int) -> None:
        self.store, self.count = store, count
        self.config = config.to_dict()
        saved = store.load() if store is not None else None
        self.states: list[dict[str, Any] | None] = [None] * count
        if saved is not None:
            members = saved.get("members")
            if not isinstance(members, list) or len(members) != count:
                kind = "one network" if members is None else f"{len(members)} networks"
                raise ValueError(
                    f"the checkpoint holds {kind}, but this config trains {count} (folds x "
                    f"repeats); it belongs to a different config: delete it to start afresh"
                )
            self.states = list(members)

    def member(self, index: int) -> CheckpointStore | None:
        if self.store is None:
            return None
        return _MemberSlot(self, index)

    def flush(self) -> None:
        if self.store is None or any(s is None for s in self.states):
            return
        first = self.states[0]
        assert first is not None
        self.store.save({"config": self.config, "epochs": first["epochs"], "members": self.states})


@dataclasses.dataclass
class _MemberSlot:
    """A member's view of `_MembersCheckpoint`."""

    owner: _MembersCheckpoint
    index: int

    def load(self) -> dict[str, Any] | None:
        return self.owner.states[self.index]

    def save(self, state: dict[str, Any]) -> None:
        self.owner.states[self.index] = state
