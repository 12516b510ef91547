"""`fit`: trains a config on tensors held on the device, one `EpochResult` per epoch.

The hot path has no per-sample Python and no host sync per batch: each epoch draws one
permutation, gathers the targets in its order once and each batch's inputs with it; each step
keeps its loss, gradient norms (one `_foreach_norm`) and predictions (one `argmax`) as tensors
on the device, in lists; they are stacked and read once per epoch (and checked for divergence
every `DIVERGENCE_CHECK_EVERY` steps). The built-in MLP's step is written out by hand
(`MlpStep`, about 30 ops instead of autograd's 100; issue 30), every other network's runs
through autograd.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from trainer._config import MAXIMIZED, TrainConfig
from trainer._data import Data, load_data, resolve_device
from trainer._evaluate import Evaluation, evaluate, layout, task_loss
from trainer._handstep import MlpStep, why_autograd
from trainer._models import model_for, weight_layers
from trainer._optim import elastic_net, make_optimizer, make_schedule, step_schedule
from trainer._pretrain import Pretraining
from trainer._records import EpochResult, PretrainEpoch
from trainer._status import Status
from trainer._transfer import Transfer, apply_transfer

DIVERGENCE_CHECK_EVERY = 50  # steps between checks for a non-finite loss


@dataclasses.dataclass
class FitResult:
    """The outcome of `fit`. `model` holds the weights of the best epoch (model selection)."""

    status: Status  # completed, early_stopped or diverged
    epochs: list[EpochResult]
    best_epoch: int | None  # None when no epoch had a finite monitored metric
    model: nn.Module
    seconds: float
    # a factory model's identity: {"ref", "source", "sha256"}; None for "mlp" and "cnn"
    factory: dict[str, str] | None = None
    # what init_from loaded and freeze held fixed; None when the config sets neither
    transfer: Transfer | None = None
    # the first epoch's partial points (`TrainConfig.fractions`), in order; not in `epochs`
    partials: list[EpochResult] = dataclasses.field(default_factory=list)
    # the unsupervised pre-training before `epochs` (`TrainConfig.pretrain_epochs`), in order
    pretraining: list[PretrainEpoch] = dataclasses.field(default_factory=list)

    @property
    def best(self) -> EpochResult | None:
        return None if self.best_epoch is None else self.epochs[self.best_epoch]


class CheckpointStore(Protocol):
    """Somewhere to keep the state of a run between epochs, so a killed run can resume."""

    def load(self) -> dict[str, Any] | None:
        """The last saved state, or None when there is none."""

    def save(self, state: dict[str, Any]) -> None:
        """Replaces the saved state (atomically: a crash leaves the old or the new one)."""


class FileCheckpoint:
    """A `CheckpointStore` in one file, written with `torch.save` and an atomic rename."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = torch.load(self.path, weights_only=False)
        except FileNotFoundError:
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        import os

        part = self.path + ".part"
        torch.save(state, part)
        os.replace(part, self.path)


OnEpoch = Callable[[EpochResult], None]
OnPretrain = Callable[[PretrainEpoch], None]


def fit(
    config: TrainConfig,
    data: Data | None = None,
    *,
    on_epoch: OnEpoch | None = None,
    checkpoint: CheckpointStore | None = None,
    search_path: Sequence[str | Path] = (),
    on_pretrain: OnPretrain | None = None,
) -> FitResult:
    """Trains `config`; after every epoch hands an `EpochResult` to `on_epoch`.

    With `config.fractions`, `on_epoch` also gets a result at each of those points inside the
    first epoch (`EpochResult.fraction` < 1; see `Training.step`).

    Args:
        config: the run.
        data: tensors to train on; loaded from the config when None.
        on_epoch: called after each epoch; it may end the run by raising (the exception
            propagates, e.g. a pruning signal).
        checkpoint: when given, the state after each epoch is saved there, and a run that
            finds a saved state resumes after its last finished epoch. The restored epochs are
            handed to `on_epoch` again first, so a new observer sees the whole curve. A resumed
            run takes its weights from the checkpoint, not from `init_from` again.
        search_path: folders where a factory's (or loader's) file or module, or a relative
            `init_from`, is looked for (before the current folder).
        on_pretrain: called after each pre-training epoch (`pretrain_epochs`), before the
            first supervised one; a resumed run hands it the restored ones first.

    Returns:
        The epochs run, why the run ended, and the model with the best epoch's weights.
        On a CPU the same config gives the same result again with the same number of torch
        threads (a different count changes the rounding of matrix products).

    On a CPU, `fit` turns on torch's flushing of subnormal floats for the process
    (`torch.set_flush_denormal(True)`): arithmetic on numbers below about 1e-38 runs in
    microcode, and a configuration whose weights or gradients settle near zero (a tiny
    learning rate, heavy decay) trained 15-20x slower per epoch without it (mnist-mlp's
    configuration 142 of the recorded curves: 3, 21, then 45 s of CPU for its first three
    epochs, against 2.6, 2.4 and 2.4 s with flushing). A value that small changes nothing a
    network computes; results with flushing can differ from those of hpstudy before issue
    28 only where such values occurred.

    Raises:
        ValueError: the checkpoint holds a run of another config, `data` was loaded for
            another task, or the config asks for several networks (folds or repeats > 1:
            `cross_fit` trains those).
        UserCodeError: a factory model that cannot be built or does not fit the data (see
            `check_model`).
        WeightsError: `init_from` cannot be read, or none of its parameters fits the network
            (see `apply_transfer`).
        ConfigError: `freeze` leaves no weight layer of the network to train.
    """
    start = time.perf_counter()
    device = resolve_device(config.device)
    data = (load_data(config, search_path=search_path) if data is None else data).to(device)
    training = Training(
        config, data, checkpoint=checkpoint, search_path=search_path, on_pretrain=on_pretrain
    )
    if on_epoch is not None:
        for result in training.history:  # restored from the checkpoint: the whole curve
            on_epoch(result)
    while training.status == Status.RUNNING:
        result = training.step()
        if on_epoch is not None:
            on_epoch(result)
    return training.result(started=start)


class Training:
    """One network's run, an epoch at a time: `fit` drives one, `cross_fit` several in turn.

    Building it seeds torch, builds and initialises the network, and restores the checkpoint's
    state when there is one (its epochs are then in `epochs` already).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: Data,
        *,
        checkpoint: CheckpointStore | None = None,
        search_path: Sequence[str | Path] = (),
        on_pretrain: OnPretrain | None = None,
    ) -> None:
        if data.task != config.task:
            raise ValueError(
                f"the data was loaded for task '{data.task}', but the config's task is "
                f"'{config.task}'; load it with this config"
            )
        if config.folds > 1 or config.repeats > 1:
            raise ValueError(
                f"fit trains one network; a config with folds = {config.folds} and repeats = "
                f"{config.repeats} trains several: use cross_fit"
            )
        self.config, self.data, self.checkpoint = config, data, checkpoint
        self.on_pretrain = on_pretrain
        device = data.x_train.device
        if device.type == "cpu":
            torch.set_flush_denormal(True)  # subnormal floats crawl: see `fit`
        saved = checkpoint.load() if checkpoint is not None else None
        torch.manual_seed(config.seed)
        model, self.factory = model_for(config, data, search_path=search_path)
        restored = None if saved is None else saved.get("transfer")
        self.transfer = apply_transfer(model, config, search_path=search_path, restored=restored)
        # a resumed run's weights, pre-trained ones included, come from the checkpoint
        progress = None if saved is None else saved.get("pretraining_progress")
        fresh = config.pretrain_epochs > 0 and (saved is None or progress is not None)
        pretraining = self._pretrain(model, saved) if fresh else []
        if fresh:
            saved = None  # fine-tuning starts afresh after pre-training
        optimizer = make_optimizer(model, config)  # without the frozen parameters
        self.schedule = make_schedule(optimizer, config)
        order = torch.Generator(device=device).manual_seed(config.seed)
        # Without a dev split (dev_fraction = 0) nothing is scored: the last epoch is kept.
        self.scored = len(data.y_dev) > 0
        self.run = _Run(
            config,
            model,
            optimizer,
            self.schedule,
            order,
            transfer=self.transfer,
            scored=self.scored,
        )
        self.run.pretraining = pretraining
        if saved is not None:
            self.run.restore(saved)
            if on_pretrain is not None:  # restored with the run: the whole pre-training
                for record in self.run.pretraining:
                    on_pretrain(record)
        elif fresh and checkpoint is not None:
            checkpoint.save(self.run.state())
        self.epoch: EpochPass | None = None  # the epoch in progress, between partial points
        self.marks: list[int] = []  # its partial points still to score, as rows of its order
        self.started = 0.0  # when it began (perf_counter)

    def _pretrain(self, model: nn.Module, saved: dict[str, Any] | None) -> list[PretrainEpoch]:
        """Pre-trains `model` (see `Pretraining`), going on from a checkpoint saved in the
        middle of it; saves one after each pre-training epoch but the last."""
        config, checkpoint = self.config, self.checkpoint
        progress = None
        if saved is not None:
            check_same_config(config, saved)
            model.load_state_dict(saved["model"])
            progress = saved["pretraining_progress"]
        run = Pretraining(model, self.data, config, restored=progress)
        if self.on_pretrain is not None:
            for record in run.records:  # restored from the checkpoint
                self.on_pretrain(record)
        while not run.done:
            record = run.step()
            if self.on_pretrain is not None:
                self.on_pretrain(record)
            if checkpoint is not None and not run.done:
                progress = run.state()
                checkpoint.save(
                    {
                        "config": config.to_dict(),
                        "epochs": [],  # no supervised epoch yet (stores count them)
                        "model": model.state_dict(),
                        "pretraining_progress": progress,
                    }
                )
        return run.records

    @property
    def status(self) -> Status:
        """Running, or why the run ended: completed, early_stopped or diverged."""
        return self.run.status

    @property
    def epochs(self) -> list[EpochResult]:
        return self.run.epochs

    @property
    def pretraining(self) -> list[PretrainEpoch]:
        """The pre-training epochs, layer by layer (restored from a checkpoint too)."""
        return self.run.pretraining

    @property
    def history(self) -> list[EpochResult]:
        """Every result so far in order: the first epoch's partial points, then the epochs."""
        return self.run.history

    def step(self) -> EpochResult:
        """Trains and scores up to the next measurement, a whole epoch or, in the first
        epoch, the next of `config.fractions`; a whole epoch is saved to the checkpoint.

        A partial point is scored on the dev split and recorded in `history`, but it is no
        epoch: it does not step the schedule, count for patience, take part in model
        selection, or save a checkpoint.
        """
        run, data, config = self.run, self.data, self.config
        if self.epoch is None:
            self.started = time.perf_counter()
            if config.fractions and not run.epochs:
                # every prefix of a stratified order is a stratified share of the split
                perm = stratified_order(data.y_train, config.task, run.order)
                n = len(data.y_train)
                self.marks = [max(1, min(round(f * n), n - 1)) for f in config.fractions]
            else:
                n, device = len(data.y_train), data.x_train.device
                perm = torch.randperm(n, generator=run.order, device=device)
            self.epoch = EpochPass(run.model, run.optimizer, data, config, perm)
        epoch = self.epoch
        if self.marks:
            epoch.train_to(self.marks.pop(0))
            dev = self._score()
            fraction = epoch.done / len(data.y_train)
            partial = self._result(dev, epoch.summary(), fraction=fraction)
            run.history.append(partial)
            return partial
        epoch.train_to(epoch.stop)
        self.epoch = None
        train = epoch.summary()
        dev = self._score()
        result = self._result(dev, train, fraction=1.0)
        run.record(result)
        # reduce_on_plateau watches the dev loss; without a dev split, the training loss
        step_schedule(self.schedule, dev.loss if self.scored else result.train_loss)
        if self.checkpoint is not None:
            self.checkpoint.save(run.state())
        return result

    def _score(self) -> Evaluation:
        if not self.scored:
            return Evaluation(loss=math.nan)
        data = self.data
        return evaluate(
            self.run.model, data.x_dev, data.y_dev, task=data.task, target_std=data.target_std
        )

    def _result(self, dev: Evaluation, train: dict[str, Any], *, fraction: float) -> EpochResult:
        run = self.run
        return EpochResult(
            epoch=len(run.epochs),
            dev_loss=dev.loss,
            dev_accuracy=dev.accuracy,
            dev_rmse=dev.rmse,
            dev_r2=dev.r2,
            lr=run.optimizer.param_groups[0]["lr"],
            seconds=time.perf_counter() - self.started,
            finished_at=time.time(),
            fraction=fraction,
            **train,
        )

    def result(self, *, started: float) -> FitResult:
        """The run so far, its model set to the best epoch's weights."""
        run = self.run
        if run.best_state is not None:
            run.model.load_state_dict(run.best_state)
        return FitResult(
            status=run.status,
            epochs=run.epochs,
            best_epoch=run.best_epoch,
            model=run.model,
            seconds=time.perf_counter() - started,
            factory=self.factory,
            transfer=self.transfer,
            partials=[e for e in run.history if e.partial],
            pretraining=run.pretraining,
        )


class _Run:
    """The bookkeeping of a run: history, model selection, early stopping, checkpoints."""

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
        order: torch.Generator,
        *,
        transfer: Transfer | None = None,
        scored: bool = True,
    ) -> None:
        self.config = config
        self.scored = scored  # False: no dev split, so each epoch replaces the last
        self.model, self.optimizer, self.schedule, self.order = model, optimizer, schedule, order
        self.transfer = transfer
        self.epochs: list[EpochResult] = []
        self.history: list[EpochResult] = []  # the epochs and the first epoch's partial points
        self.pretraining: list[PretrainEpoch] = []  # before the epochs, apart from them
        self.best_epoch: int | None = None
        self.best_value = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.status = Status.RUNNING
        # Maximising accuracy (or R²) is minimising its negative.
        self.sign = -1.0 if config.monitor in MAXIMIZED else 1.0

    def record(self, result: EpochResult) -> Status:
        """Adds an epoch; returns the run's status after it."""
        self.epochs.append(result)
        self.history.append(result)
        if not (
            math.isfinite(result.train_loss) and (math.isfinite(result.dev_loss) or not self.scored)
        ):
            self.status = Status.DIVERGED
            return self.status
        if self.scored:
            value = self.sign * result.metric(self.config.monitor)
        else:
            value = -float(result.epoch)  # nothing to select on: the newest epoch is best
        if value < self.best_value:
            self.best_value, self.best_epoch = value, result.epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        patience = self.config.patience
        if patience and self.best_epoch is not None and result.epoch - self.best_epoch >= patience:
            self.status = Status.EARLY_STOPPED
        elif len(self.epochs) >= self.config.epochs:
            self.status = Status.COMPLETED
        return self.status

    def state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epochs": [e.to_dict() for e in self.epochs],
            "partials": [e.to_dict() for e in self.history if e.partial],
            "pretraining": [e.to_dict() for e in self.pretraining],
            "status": self.status.value,  # a plain str: weights-only loading takes it
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "best_state": self.best_state,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "order": self.order.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "transfer": None if self.transfer is None else self.transfer.to_dict(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continues from `state`.

        A field the saved config lacks (it was written before the field existed) counts as
        its default.

        Raises:
            ValueError: the state was saved by a run of another config.
        """
        check_same_config(self.config, state)
        self.epochs = [EpochResult.from_dict(e) for e in state["epochs"]]
        # partial points lie in the first epoch, before every whole one; none before they existed
        partials = [EpochResult.from_dict(e) for e in state.get("partials", [])]
        self.history = partials + self.epochs
        self.pretraining = [PretrainEpoch.from_dict(e) for e in state.get("pretraining", [])]
        self.status = Status(state["status"])
        self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
        self.best_state = state["best_state"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.order.set_state(state["order"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])


def check_same_config(config: TrainConfig, state: dict[str, Any]) -> None:
    """A checkpoint's config must be `config`; a field it lacks (it was written before the
    field existed) counts as its default.

    Raises:
        ValueError: naming each field that differs.
    """
    mine = config.to_dict()
    theirs = {**TrainConfig().to_dict(), **state["config"]}
    differ = sorted(k for k in {*mine, *theirs} if theirs.get(k) != mine.get(k))
    if differ:
        changes = ", ".join(f"{k}: {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ)
        raise ValueError(
            f"the checkpoint belongs to a different config ({changes}); delete it to start afresh"
        )


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Data,
    config: TrainConfig,
    order: torch.Generator,
) -> dict[str, Any]:
    """One pass over the training tensors in a fresh random order.

    Frozen weights (``requires_grad`` off) are left out of the elastic net and of the
    gradient norms.

    Returns:
        train_loss, train_accuracy (NaN for regression), grad_norm_mean and grad_norm_max
        (EpochResult's fields).
    """
    perm = torch.randperm(len(data.y_train), generator=order, device=data.x_train.device)
    epoch = EpochPass(model, optimizer, data, config, perm)
    epoch.train_to(epoch.stop)
    return epoch.summary()


def stratified_order(y: torch.Tensor, task: str, order: torch.Generator) -> torch.Tensor:
    """A permutation of the rows of `y` each prefix of which is (nearly) a stratified sample.

    Classification: row r of class c, at random rank k among the class's n_c rows, sorts by
    (k + u) / n_c with u ~ U(0, 1), so the first m rows hold about m * n_c / n of class c.
    Regression: a plain random permutation.
    """
    n = len(y)
    perm = torch.randperm(n, generator=order, device=y.device)
    if task != "classification":
        return perm
    labels = y.index_select(0, perm)
    by_class = torch.sort(labels, stable=True).indices  # random order within each class
    rows, sorted_labels = perm.index_select(0, by_class), labels.index_select(0, by_class)
    counts = torch.bincount(sorted_labels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=y.device) - starts.index_select(0, sorted_labels)
    u = torch.rand(n, generator=order, device=y.device)
    key = (rank + u) / counts.index_select(0, sorted_labels)
    return rows.index_select(0, torch.sort(key, stable=True).indices)


class EpochPass:
    """One pass over the training tensors in the order `perm`, trained in stretches.

    `train_to(end)` trains the batches of rows [done, end): batches are cut from where the
    last stretch ended, so a stretch boundary inside the epoch gives one short batch. Its
    books stay on the device, as each step's tensors in lists (no op a step to keep them);
    `summary()` reads them (one host sync).

    The built-in MLP trains by the hand-written `MlpStep` (`by_hand`), every other network
    through autograd (`why_autograd` says why).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data: Data,
        config: TrainConfig,
        perm: torch.Tensor,
    ) -> None:
        self.model, self.optimizer, self.data, self.config, self.perm = (
            model,
            optimizer,
            data,
            config,
            perm,
        )
        self.layers = [(name, p) for name, p in weight_layers(model) if p.requires_grad]
        self.weights = [p for _, p in self.layers]
        self.params = [p for p in model.parameters() if p.requires_grad]
        n, size = len(data.y_train), config.batch_size
        self.targets = data.y_train.index_select(0, perm)  # in the order trained
        # each step's gradient norms, weight by weight (squared by the hand-written step)
        self.norms: list[torch.Tensor] = []
        self.losses: list[torch.Tensor] = []  # each step's mean loss
        self.sizes: list[int] = []  # each step's rows, for the loss's weighted mean
        self.predicted: list[torch.Tensor] = []  # classification: each step's predictions
        self.truth: list[torch.Tensor] = []  # and its targets
        self.steps = 0
        self.rows = 0  # rows trained on
        self.done = 0  # rows of the order passed
        self.diverged = False  # a divergence check failed: the rest would only spread NaNs
        # A last batch of one example breaks batch norm's statistics; it is dropped.
        self.stop = n - 1 if config.batch_norm and n % size == 1 and n > 1 else n
        by_hand = why_autograd(model, config, data) is None
        self.by_hand = MlpStep(model, optimizer, data, config) if by_hand else None

    def train_to(self, end: int) -> None:
        """Trains the rows of the order up to `end` (at most `stop`)."""
        self.model.train()  # a dev evaluation between stretches left it in eval mode
        model, config, data, weights = self.model, self.config, self.data, self.weights
        classify = config.task == "classification"
        size = config.batch_size
        end = min(end, self.stop)
        if end <= self.done:
            return
        by_hand = self.by_hand
        batches = zip(
            self.perm[self.done : end].split(size),
            self.targets[self.done : end].split(size),
            strict=True,
        )
        for index, y in batches:
            if self.diverged:
                break
            if by_hand is not None:
                output, loss = by_hand(index, y)
                self.norms.extend(by_hand.squared_norms())  # `summary` takes their roots
            else:
                if config.batch_norm and len(index) == 1 and size > 1:
                    continue  # a one-row batch at a stretch's end: batch norm cannot train on it
                # index_select: a third of the cost of x[index] for a batch of rows on a CPU
                x = data.x_train.index_select(0, index)
                output = model(layout(x, model))
                loss = task_loss(output, y, config.task)
                objective = (
                    loss + elastic_net(weights, config.l1, config.l1_ratio) if config.l1 else loss
                )
                # the optimiser's zero_grad(set_to_none=True), less its wrapping
                for p in self.params:
                    p.grad = None
                objective.backward()
                loss = loss.detach()
                # norms of the raw gradients, before clipping: explosions stay visible; a
                # weight the forward pass did not use has no gradient (norm 0)
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in weights]
                if grads:
                    self.norms.extend(torch._foreach_norm(grads))
            self.losses.append(loss)
            if config.clip_value:
                nn.utils.clip_grad_value_(model.parameters(), config.clip_value)
            if config.clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            if by_hand is not None:
                by_hand.update()
            else:
                self.optimizer.step()
            if classify:
                self.predicted.append(torch.argmax(output, dim=1))
                self.truth.append(y)
            self.steps += 1
            self.rows += len(y)
            self.sizes.append(len(y))
            if self.steps % DIVERGENCE_CHECK_EVERY == 0 and not self._finite():
                self.diverged = True
        self.done = max(self.done, end)

    def _finite(self) -> bool:
        """Whether the losses since the last check are all finite (one host sync)."""
        recent = torch.stack(self.losses[-DIVERGENCE_CHECK_EVERY:])
        return bool(torch.isfinite(recent).all())

    def summary(self) -> dict[str, Any]:
        """train_loss, train_accuracy (NaN for regression), grad_norm_mean and grad_norm_max
        over the batches trained so far."""
        seen, steps, device = max(self.rows, 1), self.steps, self.targets.device
        norms = torch.zeros(steps, len(self.weights), device=device, dtype=torch.float64)
        losses = torch.zeros(steps, device=device, dtype=torch.float64)
        if steps:
            losses = torch.stack(self.losses).double()
            if self.weights:
                norms = torch.stack(self.norms).double().view(steps, len(self.weights))
                if self.by_hand is not None:
                    norms = norms.sqrt()
        sizes = torch.tensor(self.sizes, dtype=torch.float64, device=device)
        mean = (norms.sum(dim=0) / max(steps, 1)).tolist()
        top = (norms.amax(dim=0) if steps else norms.sum(dim=0)).tolist()
        classify = self.config.task == "classification"
        if classify:
            correct: float = 0
            if steps:
                correct = (torch.cat(self.predicted) == torch.cat(self.truth)).sum().item()
        return {
            "train_loss": (losses * sizes).sum().item() / seen,
            "train_accuracy": correct / seen if classify else math.nan,
            "grad_norm_mean": {name: m for (name, _), m in zip(self.layers, mean, strict=True)},
            "grad_norm_max": {name: m for (name, _), m in zip(self.layers, top, strict=True)},
        }
