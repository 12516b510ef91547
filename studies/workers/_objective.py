"""The Optuna objective: suggest -> config -> `trainer.fit`, reporting every epoch.

`Reporter` is the whole bridge between the training loop and Optuna: it stores the epoch,
reports the study's metric at that step, and raises `TrialPruned` when the pruner says so.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import optuna

import trainer
from search_space import SearchSpace, nest, suggest
from studies.analysis import chance_loss, diagnose
from studies.spec import REPEAT, Constraint, StudySpec
from studies.storage import (
    EpochStore,
    StopReason,
    TargetRecord,
    TrialAttrs,
    WeightStore,
    chain_root,
    local_transfer,
    set_constraint_values,
    write_attrs,
)
from studies.workers._halving import EpochHalving
from studies.workers._lr_auto import as_config_params
from studies.workers._signals import Stop

if TYPE_CHECKING:  # torch loads when the first trial trains (trainer.fit), not on import
    from trainer import (
        CheckpointStore,
        CrossResult,
        Data,
        EpochResult,
        FitResult,
        PretrainEpoch,
        TrainConfig,
        Transfer,
    )

_log = logging.getLogger("hpstudy.objective")

# The config fields that decide a trial's data: trials that share them share one load.
DATA_FIELDS = (
    "dataset",
    "data_dir",
    "task",
    "target",
    "test_fraction",
    "standardize",
    "dev_fraction",
    "folds",  # folds > 1 loads the whole training split, the folds' pool
    "split_seed",
    "train_size",
    "device",
)


def device_name(name: str) -> str:
    """The device a config's `device` trains on: "cpu", or "cuda:N" with N the node's own
    number of the GPU (as `nvidia-smi` shows it), also when CUDA_VISIBLE_DEVICES renumbers."""
    import torch

    device = trainer.resolve_device(name)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    if index < len(visible) and visible[index].isdigit():
        index = int(visible[index])
    return f"cuda:{index}"


# Called when a trial has ended (completed, pruned or diverged), before Optuna is told:
# (trial, config, epochs, stop_reason). Pictures and notes for the dashboard hook in here.
TrialFinisher: TypeAlias = (
    "Callable[[optuna.Trial, TrainConfig, Sequence[EpochResult], StopReason], None]"
)
# (trial, number of its retry chain's first trial) -> where its training state is kept
CheckpointFactory: TypeAlias = "Callable[[optuna.Trial, int], CheckpointStore | None]"


def report_step(result: EpochResult, fractions: Sequence[float] = ()) -> int:
    """The step at which a result is reported to Optuna (and judged by `EpochHalving`).

    The step is the epochs trained (epoch + fraction) in units of the smallest of the
    config's `fractions`, rounded; without fractions, in epochs: 1 after the first epoch, so
    a pruner's `min_resource = 1` judges a trial after one epoch (before issue 28 the step
    was the epoch counted from 0, and a pruner could judge no earlier than after two). With
    fractions (1/9, 1/3) the steps are 1 and 3 inside the first epoch, then 9, 18, 27, ...
    at the ends of epochs 0, 1, 2, ...: a `SuccessiveHalvingPruner` with min_resource = 1 and
    reduction_factor = 3 then has its rungs at 1/9, 1/3, 1, 3 and 9 epochs.
    """
    unit = fractions[0] if fractions else 1.0
    return round(result.epochs_trained / unit)


class Reporter:
    """Stores each epoch, reports `metric` to the trial, and prunes when told to.

    The reported metric is the study's own (dev loss by default), so that the pruner compares
    trials in the direction the study optimises; the step is `report_step`'s.
    """

    def __init__(
        self,
        trial: optuna.Trial,
        trial_id: int,
        store: EpochStore,
        metric: str,
        *,
        halving: EpochHalving | None = None,
        several: bool = False,
        fractions: Sequence[float] = (),
    ):
        self.trial, self.trial_id, self.store, self.metric = trial, trial_id, store, metric
        # A study of several objectives: Optuna refuses `report`; `halving` (or nothing) prunes.
        self.halving, self.several = halving, several
        self.fractions = tuple(fractions)  # the config's: the unit of the steps
        # every result, in order: the first epoch's points (`fractions`), then the epochs
        self.epochs: list[EpochResult] = []
        self.measured: dict[str, float] = {}  # the network's, once measured (halving uses it)
        self.step: int | None = None  # the last step reported

    def __call__(self, result: EpochResult) -> None:
        self.epochs.append(result)
        self.store.add(self.trial_id, result)
        if not (math.isfinite(result.train_loss) and math.isfinite(result.dev_loss)):
            return  # diverged: `fit` ends the run here, and the objective prunes it as such
        value = result.metric(self.metric)
        step, previous = report_step(result, self.fractions), self.step
        self.step = step
        if self.several or self.halving is not None:
            pruned = self.halving is not None and self.halving.should_prune(
                self.trial_id,
                result.epoch,
                value,
                self.measured,
                step=step,
                previous=previous,
                fraction=result.fraction,
            )
        else:
            self.trial.report(value, step)
            pruned = self.trial.should_prune()
        if pruned:
            where = f"epoch {result.epoch}"
            if result.partial:
                where = f"{result.fraction:.3g} of epoch {result.epoch}"
            raise optuna.TrialPruned(f"pruned after {where}: {self.metric} {value:.4g}")


def trial_seed(study_seed: int, number: int) -> int:
    """A distinct, repeatable seed per trial; a retried trial keeps its original's."""
    return (study_seed * 1_000_003 + number) % (2**31)


class Objective:
    """Trains one trial; its value is the best dev metric over the epochs (model selection),
    or for folds or repeats > 1 the mean of that over the trial's networks (`cross_fit`)."""

    def __init__(
        self,
        spec: StudySpec,
        store: EpochStore,
        storage: optuna.storages.BaseStorage,
        *,
        finishers: Sequence[TrialFinisher] = (),
        checkpoints: CheckpointFactory | None = None,
        target: TargetRecord | None = None,
        space: SearchSpace | None = None,
        weights: WeightStore | None = None,
        halving: EpochHalving | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.spec = spec
        self.stop = stop  # a `Stop` ends a trial at an epoch's end once its worker is orphaned
        self.halving = halving  # prunes a study of several objectives
        self.target = target
        self.space = spec.space if space is None else space  # with auto lr: lr per optimiser
        self.weights = weights  # where the best trials' trained weights are kept
        self.store = store
        self.storage = storage
        self.study_id = storage.get_study_id_from_name(spec.name)
        self.finishers = list(finishers)
        self.checkpoints = checkpoints
        self._data: tuple[tuple[Any, ...], Data] | None = None

    def config(self, trial: optuna.Trial, root: int) -> TrainConfig:
        """The trial's complete config: the spec's base, the sampled values, its chain's seed."""
        base = self.spec.train.to_dict()
        params = as_config_params(nest(suggest(trial, self.space, base=base), base=base))
        # An ablation's runs share seeds across cells: the seed follows `repeat`, so paired
        # tests compare the same initial weights and batch order.
        repeat = params.pop(REPEAT, None)
        seed = trial_seed(self.spec.seed, root if repeat is None else int(repeat))
        return self.spec.train.replace(**params, seed=seed)

    def data(self, config: TrainConfig) -> Data:
        """The data of `config`, loaded once per worker while trials share the split."""
        key = tuple(getattr(config, name) for name in DATA_FIELDS)
        if self._data is None or self._data[0] != key:
            data = trainer.load_data(config, search_path=self.spec.search_path)
            self._data = (key, data)
        return self._data[1]

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        import torch

        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)
        root = chain_root(self.storage.get_trial(trial_id))
        config = self.config(trial, root)
        # CPU results repeat exactly only with the same thread count (summation order), so
        # export and reproduce read it back from here.
        write_attrs(
            trial,
            seed=config.seed,
            config=config.to_dict(),
            torch_threads=torch.get_num_threads(),
            host=socket.gethostname(),
            device=device_name(config.device),
        )
        reporter = Reporter(
            trial,
            trial_id,
            self.store,
            self.spec.metric,
            halving=self.halving,
            several=self.spec.multi,
            fractions=config.fractions,
        )
        measured: dict[str, float] = {}
        # stored as each pre-training epoch ends (the dashboard shows it while the trial runs)
        # and again when the trial ends, pruned too
        pretraining: list[PretrainEpoch] = []
        on_epoch = reporter if self.target is None else _watching(self.target, trial, reporter)
        if isinstance(self.stop, Stop):
            on_epoch = _stopping(self.stop, on_epoch)
        checkpoint = self.checkpoints(trial, root) if self.checkpoints else None
        try:
            data = self.data(config)
            measured = reporter.measured = self._measure(trial, config, data)
            # Provenance for export: the data, its transform, and the user's model code.
            write_attrs(trial, data=data.identity, standardization=data.standardization)
            if trainer.parse_reference(config.model) is not None:
                factory = trainer.load_factory(config.model, search_path=self.spec.search_path)
                write_attrs(trial, model=factory.identity())
            trained, source = local_transfer(config)  # init_from = "study@url": a file
            train = trainer.cross_fit if config.folds * config.repeats > 1 else trainer.fit
            result = train(
                trained,
                data,
                on_epoch=on_epoch,
                checkpoint=checkpoint,
                search_path=self.spec.search_path,
                on_pretrain=functools.partial(_keep_pretraining, trial, pretraining),
            )
            if isinstance(result, trainer.CrossResult):
                write_attrs(trial, folds=result.summary(self.spec.metric))
            transfer = _transfer(result)
            if transfer is not None:
                write_attrs(trial, transfer={**transfer.to_dict(), "study": source})
        except optuna.TrialPruned:
            self._finish(trial, config, reporter.epochs, StopReason.PRUNED, measured, pretraining)
            self._constrain(trial_id, measured)
            raise
        except Exception as exc:
            write_attrs(
                trial,
                stop_reason=StopReason.FAILED,
                fail_reason=f"{type(exc).__name__}: {exc}"[:500],
            )
            raise
        reason = StopReason.of(result.status)
        self._finish(trial, config, reporter.epochs, reason, measured, pretraining)
        try:
            learned = self._learned(result)
        except optuna.TrialPruned:  # diverged
            self._constrain(trial_id, measured)
            raise
        quantities = {**measured, **learned}
        self._constrain(trial_id, quantities)
        self._keep_weights(trial, learned[self.spec.metric], result)
        values = [_quantity(quantities, name) for name in self.spec.directions]
        return values if self.spec.multi else values[0]

    def _learned(self, result: FitResult | CrossResult) -> dict[str, float]:
        """The learning metrics the study optimises or bounds, at the best epoch (or the mean
        of the networks' best epochs).

        Raises:
            optuna.TrialPruned: for a run that diverged.
        """
        names = {self.spec.metric, *self.spec.directions}
        names |= {c.name for c in self.spec.objectives.constraints}
        names &= set(trainer.MONITORS)
        if isinstance(result, trainer.CrossResult):
            _cross_value(result, self.spec.metric)  # raises for a diverged network
            return {name: result.value(name) for name in names}
        best = result.best
        if result.status == trainer.Status.DIVERGED or best is None:
            # A diverged run tells the sampler "bad region" through its reported epochs;
            # as a pruned trial it does not stop the study.
            raise optuna.TrialPruned(f"diverged at epoch {len(result.epochs) - 1}")
        return {name: best.metric(name) for name in names}

    def _constrain(self, trial_id: int, quantities: Mapping[str, float]) -> None:
        """Stores the trial's constraint values where Optuna's samplers and visualisations
        and optuna-dashboard read them (see `set_constraint_values`)."""
        constraints = self.spec.objectives.constraints
        if constraints:
            values = constraint_values(constraints, quantities)
            set_constraint_values(self.storage, trial_id, values)

    def _measure(self, trial: optuna.Trial, config: TrainConfig, data: Data) -> dict[str, float]:
        """`params`, `model_bytes`, `flops` and `latency_ms` of the trial's network as built
        (on the data's device), recorded before it trains, so that pruned trials have them.

        A network the measurement cannot handle is logged and left unmeasured, unless the
        study optimises or bounds a measured property.
        """
        try:
            model = trainer.build_model(
                config, data.input_shape, data.outputs, search_path=self.spec.search_path
            ).to(data.x_dev.device)
            found = trainer.measure(
                model, data.x_dev, latency_batch=self.spec.objectives.latency_batch
            )
        except Exception:
            if self.spec.objectives.measured_needed:
                raise
            _log.warning("trial %d: its network was not measured", trial.number, exc_info=True)
            return {}
        write_attrs(trial, measured=found)
        return found

    def _keep_weights(
        self, trial: optuna.Trial, value: float, result: FitResult | CrossResult
    ) -> None:
        """Offers the best epoch's weights to the study's store (kept if among the best): a
        trial of several networks offers their `Ensemble` (every member at its best epoch,
        and their fold scalings)."""
        if self.weights is None or self.spec.keep_weights < 1:
            return
        import io

        import torch

        buffer = io.BytesIO()
        try:
            model = (
                trainer.ensemble_of(result)
                if isinstance(result, trainer.CrossResult)
                else result.model
            )
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
            self.weights.offer(
                trial.study, trial.number, value, buffer.getvalue(), keep=self.spec.keep_weights
            )
        except Exception:  # weights that cannot be kept must not fail a trained trial
            _log.warning("trial %d: its weights were not kept", trial.number, exc_info=True)

    def _finish(
        self,
        trial: optuna.Trial,
        config: TrainConfig,
        epochs: Sequence[EpochResult],
        reason: StopReason,
        measured: dict[str, float],
        pretraining: Sequence[PretrainEpoch] = (),
    ) -> None:
        whole = [e for e in epochs if not e.partial]
        write_attrs(trial, stop_reason=reason, epochs_run=len(whole))
        if pretraining:  # before the finishers: the picture shows it
            write_attrs(trial, pretraining=tuple(pretraining))
        if measured:
            measured["train_seconds"] = trainer.training_seconds(epochs)
            write_attrs(trial, measured=measured)
        for finisher in self.finishers:
            try:
                finisher(trial, config, epochs, reason)
            except Exception:  # a picture or a note that fails must not change the trial
                _log.warning("trial %d: %r failed", trial.number, finisher, exc_info=True)


def _keep_pretraining(
    trial: optuna.Trial, kept: list[PretrainEpoch], record: PretrainEpoch
) -> None:
    """Adds a pre-training epoch to the trial's records and stores them all (its
    `pretraining` attribute: the dashboard shows how far pre-training has come)."""
    kept.append(record)
    write_attrs(trial, pretraining=tuple(kept))


def constraint_values(
    constraints: Sequence[Constraint], quantities: Mapping[str, float]
) -> list[float]:
    """How far the trial breaks each constraint (<= 0: it holds), in the spec's order; 0.0
    for one whose quantity is unknown (a learning metric's bound on a pruned trial)."""
    return [c.violation(quantities[c.name]) if c.name in quantities else 0.0 for c in constraints]


def _quantity(quantities: Mapping[str, float], name: str) -> float:
    if name not in quantities:
        raise RuntimeError(f"the network's {name} was not measured (see the warning above)")
    return quantities[name]


def _cross_value(result: CrossResult, metric: str) -> float:
    """The value of a trial of several networks (folds, repeats): the mean of their best
    epochs' `metric`. Their ensemble is the weights kept (`Objective._keep_weights`).

    Raises:
        optuna.TrialPruned: a network diverged (as for one network).
    """
    values = result.values(metric)
    if result.status == trainer.Status.DIVERGED or not all(math.isfinite(v) for v in values):
        raise optuna.TrialPruned(f"diverged at epoch {len(result.epochs) - 1}")
    return result.value(metric)


def _transfer(result: FitResult | CrossResult) -> Transfer | None:
    """What init_from loaded: the same for every network of a trial."""
    if isinstance(result, trainer.CrossResult):
        return result.members[0].transfer if result.members else None
    return result.transfer


def study_best_dev_loss(trial: optuna.Trial, *, exclude: int) -> float | None:
    """The lowest best-epoch dev loss of the trial's study's other complete trials (their
    diagnoses hold it), or None before any (or for a trial outside a study)."""
    study = getattr(trial, "study", None)
    if study is None:
        return None
    losses = [
        TrialAttrs.of(trial).diagnosis_numbers.get("best_dev_loss")
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if trial.number != exclude
    ]
    finite = [loss for loss in losses if isinstance(loss, (int, float)) and math.isfinite(loss)]
    return min(finite) if finite else None


def _watching(
    target: TargetRecord, trial: optuna.Trial, reporter: Reporter
) -> Callable[[EpochResult], None]:
    """The reporter, after a look at whether the epoch reached the study's target."""

    def on_epoch(result: EpochResult) -> None:
        value = result.metric(target.metric)
        if (
            math.isfinite(value)
            and target.met_by(value)
            and target.record(trial.number, result.epoch, value)
        ):
            _log.info(
                "trial %d reached the target %s %s at epoch %d (%.4g); no new trials start",
                trial.number,
                target.metric,
                target.value,
                result.epoch,
                value,
            )
        reporter(result)

    return on_epoch


def _stopping(stop: Stop, on_epoch: Callable[[EpochResult], None]) -> Callable[[EpochResult], None]:
    """`on_epoch`, then `stop.end_of_epoch()`: the epoch is checkpointed (the trainer saves
    before it calls `on_epoch`) and stored, so an interrupted trial resumes after it."""

    def stopping(result: EpochResult) -> None:
        on_epoch(result)
        if not result.partial:  # a point inside an epoch is not checkpointed: train on
            stop.end_of_epoch()

    return stopping


def store_diagnosis(
    trial: optuna.Trial, config: TrainConfig, epochs: Sequence[EpochResult], reason: StopReason
) -> None:
    """A `TrialFinisher`: the learning-curve diagnosis and the best epoch as user attributes
    (of the whole epochs: the points inside the first one are left out)."""
    epochs = [e for e in epochs if not e.partial]
    if not epochs:
        return
    records = [e.to_dict() for e in epochs]
    # "High" against the chance-level loss (ln(classes), or the target's variance), and
    # against the best dev loss the study's other trials reached.
    chance = chance_loss(TrialAttrs.of(trial).data or {})
    diagnosis = diagnose(
        records,
        diverged=reason == StopReason.DIVERGED,
        chance_loss=chance,
        reference_loss=study_best_dev_loss(trial, exclude=trial.number),
    )
    write_attrs(trial, diagnosis=diagnosis.labels, diagnosis_numbers=diagnosis.numbers)
    sign = -1.0 if trainer.metric_direction(config.monitor) == "maximize" else 1.0
    finite = [e for e in epochs if math.isfinite(e.metric(config.monitor))]
    if finite:
        best = min(finite, key=lambda e: sign * e.metric(config.monitor))
        write_attrs(trial, best_epoch=best.epoch)
