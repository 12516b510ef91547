"""The learning-rate range test (L. N. Smith, "Cyclical Learning Rates for Training Neural
Networks", 2017; fastai's `lr_find`): train a fresh model for a few hundred steps while the
learning rate grows exponentially, and read bounds for a search off the smoothed loss curve.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from trainer._config import TrainConfig
from trainer._data import Data, resolve_device
from trainer._evaluate import layout, task_loss
from trainer._models import model_for, weight_layers
from trainer._optim import elastic_net, make_optimizer
from trainer._pretrain import pretrain
from trainer._records import LRRange
from trainer._transfer import apply_transfer

# Steps before divergence is judged: the bias-corrected average of the first few losses
# swings too much for "4x its minimum so far" to mean anything yet.
WARMUP_STEPS = 10
BOUND_SPAN = 10.0  # the proposed high is at least this many times the proposed low


def lr_range_test(
    config: TrainConfig,
    data: Data,
    *,
    steps: int = 300,
    lr_min: float = 1e-7,
    lr_max: float = 10.0,
    smoothing: float = 0.98,
    diverge_factor: float = 4.0,
    search_path: Sequence[str | Path] = (),
) -> LRRange:
    """Trains a fresh model of `config` while the learning rate grows from `lr_min` to
    `lr_max`, and proposes search bounds (see `propose_bounds`).

    The model, its init (and `init_from`, `freeze`), dropout, batch norm, the optimiser with
    its momentum and weight decay, the elastic net and gradient clipping are the config's, on
    the config's device, seeded by `config.seed`. With `pretrain_epochs` the model is first
    pre-trained as `fit` pre-trains it (the same weights), so the test measures the
    fine-tuning's learning rate from where fine-tuning starts; that costs the pre-training's
    time. Its schedule is not used: before step i the
    learning rate of every parameter group is set to
    ``lr_min * (lr_max / lr_min) ** (i / (steps - 1))``. Step i trains, in train mode, on the
    i-th batch of `config.batch_size` examples of a seeded permutation of the training split
    (a fresh permutation each epoch, as in `fit`). After
    each step the task loss (without the elastic net) enters an exponential moving average,
    bias-corrected as in fastai: ``avg = smoothing * avg + (1 - smoothing) * loss``, recorded
    as ``avg / (1 - smoothing ** (i + 1))``. The test stops at the first step whose smoothed
    loss is not finite or, from step `WARMUP_STEPS` (10) on, exceeds `diverge_factor` times
    the lowest one so far.

    The global random state (CPU and CUDA) is the same after the call as before it, and the
    same config, data and torch thread count give the same curve again.

    Args:
        config: the model and optimiser to test.
        data: the tensors to train on, loaded for `config`'s task.
        steps: the most optimiser steps to take (at least 2).
        lr_min: the learning rate of the first step.
        lr_max: the learning rate of the last step; at least 10 times `lr_min`.
        smoothing: the moving average's decay, in [0, 1).
        diverge_factor: the test stops when the smoothed loss exceeds this many times its
            minimum so far (greater than 1).
        search_path: folders where a factory's file or module, or a relative `init_from`,
            is looked for.

    Raises:
        ValueError: an argument out of range, data loaded for another task, or a loss that
            diverged before the learning rate grew tenfold (then lower `lr_min`).
        UserCodeError: a factory model that cannot be built or does not fit the data.
        WeightsError: an `init_from` that cannot be used (see `apply_transfer`).
    """
    _check_arguments(steps, lr_min, lr_max, smoothing, diverge_factor)
    if data.task != config.task:
        raise ValueError(
            f"the data was loaded for task '{data.task}', but the config's task is "
            f"'{config.task}'; load it with this config"
        )
    device = resolve_device(config.device)
    data = data.to(device)
    schedule = [lr_min * (lr_max / lr_min) ** (i / (steps - 1)) for i in range(steps)]
    with torch.random.fork_rng(devices=_cuda_devices()):
        torch.manual_seed(config.seed)
        model, _ = model_for(config, data, search_path=search_path)
        apply_transfer(model, config, search_path=search_path)  # the run's start, and frozen
        if config.pretrain_epochs:  # fine-tuning starts from the pre-trained layers
            pretrain(model, data, config)
        optimizer = make_optimizer(model, config)
        order = torch.Generator(device=device).manual_seed(config.seed)
        batches = _batches(len(data.y_train), config, order)
        lrs, losses, diverged_at = _sweep(
            model, optimizer, data, config, batches, schedule, smoothing, diverge_factor
        )
    low, high, steepest, minimum = propose_bounds(lrs, losses, diverged_at=diverged_at)
    return LRRange(
        optimizer=config.optimizer,
        lrs=tuple(lrs),
        losses=tuple(losses),
        low=low,
        high=high,
        steepest=steepest,
        minimum=minimum,
        diverged_at=diverged_at,
    )


def propose_bounds(
    lrs: Sequence[float], losses: Sequence[float], *, diverged_at: float | None
) -> tuple[float, float, float, float]:
    """Search bounds from a range test's curve: (low, high, steepest, minimum).

    The rule, with n points and the tested range [lrs[0], top], top being `diverged_at` when
    the test stopped early and lrs[-1] otherwise:

    1. `minimum` is the lr of the lowest smoothed loss (the first, on ties), index m.
    2. `steepest` is the lr at the centre of the most negative centred difference
       ``(loss[i + w] - loss[i - w]) / (log lr[i + w] - log lr[i - w])``, with
       w = max(1, n // 50) and i - w >= n // 10, i + w <= m: the first tenth of the curve
       (where the average holds only a few noisy losses, and any lr still barely trains) and
       everything after the minimum (where the loss turns) are ignored. The difference over
       2w points rather than neighbours keeps the leftover noise of the average from picking
       the point. When the minimum comes too early for that window, every point up to it is
       used with w = 1; when it is the first point, steepest = minimum.
    3. `high` = minimum / 3: the minimum itself is where training turns unstable, and the
       smoothed curve lags the true one, so the bound keeps a margin below it.
    4. `low` = steepest / 10: learning is fastest at the steepest point, so a decade below
       it still trains, just slowly; the search can find out where in between is best.
    5. low is lowered to high / 10 when needed, so the search spans at least a decade; then
       high is raised to at least 10 * lrs[0] and both are clamped into [lrs[0], top]. (On a
       sensible curve high is then unchanged: it is a third of a tested lr.)

    Args:
        lrs: the learning rates of the steps, strictly increasing.
        losses: the smoothed loss after each step, finite.
        diverged_at: the lr at which the test stopped on divergence, or None.

    Raises:
        ValueError: curves of different lengths, fewer than two points, non-finite losses,
            lrs that do not increase, or a range spanning less than a decade.
    """
    top = lrs[-1] if lrs and diverged_at is None else diverged_at
    _check_curve(lrs, losses, top)
    assert top is not None  # _check_curve refuses an empty curve
    log_lrs = [math.log(lr) for lr in lrs]
    m = min(range(len(losses)), key=losses.__getitem__)
    s = _steepest_index(log_lrs, losses, m)
    minimum, steepest = lrs[m], lrs[s]
    high = _clamp(minimum / 3, BOUND_SPAN * lrs[0], top)
    low = _clamp(min(steepest / 10, high / BOUND_SPAN), lrs[0], top)
    return low, high, steepest, minimum


def _steepest_index(log_lrs: Sequence[float], losses: Sequence[float], end: int) -> int:
    """The index of the steepest fall of `losses` per log lr up to index `end`."""
    n = len(losses)
    width, start = max(1, n // 50), n // 10
    if end - start < 2 * width:  # the minimum came early: use every point before it
        width, start = 1, 0
    centres = range(start + width, end - width + 1)
    if not centres:
        return end

    def slope(i: int) -> float:
        rise = losses[i + width] - losses[i - width]
        return rise / (log_lrs[i + width] - log_lrs[i - width])

    return min(centres, key=slope)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _check_curve(lrs: Sequence[float], losses: Sequence[float], top: float | None) -> None:
    if len(lrs) != len(losses):
        raise ValueError(f"{len(lrs)} learning rates but {len(losses)} losses")
    if len(lrs) < 2 or top is None:
        stopped = f", diverging at lr {top:.3g}" if top is not None else ""
        raise ValueError(
            f"the range test recorded {len(lrs)} step(s){stopped}; a curve needs at least 2 "
            f"(lower lr_min, or check the model and data)"
        )
    if not all(math.isfinite(loss) for loss in losses):
        raise ValueError("the losses must be finite")
    if lrs[0] <= 0 or any(b <= a for a, b in itertools.pairwise(lrs)):
        raise ValueError("the learning rates must be positive and strictly increasing")
    if top < BOUND_SPAN * lrs[0]:
        raise ValueError(
            f"the range test covered lr {lrs[0]:.3g} to {top:.3g} before it stopped, less than "
            f"a factor {BOUND_SPAN:g}; lower lr_min"
        )


def _check_arguments(
    steps: int, lr_min: float, lr_max: float, smoothing: float, diverge_factor: float
) -> None:
    problems = []
    if steps < 2:
        problems.append(f"steps must be at least 2, got {steps}")
    if not (lr_min > 0 and lr_max >= BOUND_SPAN * lr_min):
        problems.append(
            f"lr_min must be positive and lr_max at least {BOUND_SPAN:g} times lr_min, "
            f"got {lr_min:g} and {lr_max:g}"
        )
    if not 0 <= smoothing < 1:
        problems.append(f"smoothing must be in [0, 1), got {smoothing:g}")
    if not diverge_factor > 1:
        problems.append(f"diverge_factor must exceed 1, got {diverge_factor:g}")
    if problems:
        raise ValueError("; ".join(problems))


def _cuda_devices() -> list[int]:
    """Every CUDA device, whose random state `torch.manual_seed` also sets."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def _batches(n: int, config: TrainConfig, order: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless row indices of batches, epoch after epoch, each epoch a fresh permutation.

    As in `fit`, a last batch of one example is dropped when batch norm would break on it.
    """
    size = config.batch_size
    stop = n - 1 if config.batch_norm and n % size == 1 and n > 1 else n
    while True:
        perm = torch.randperm(n, generator=order, device=order.device)
        for begin in range(0, stop, size):
            yield perm[begin : begin + size]


def _sweep(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Data,
    config: TrainConfig,
    batches: Iterator[torch.Tensor],
    schedule: Sequence[float],
    smoothing: float,
    diverge_factor: float,
) -> tuple[list[float], list[float], float | None]:
    """Trains one step per lr of `schedule`: (lrs, smoothed losses, lr it diverged at)."""
    model.train()
    weights = [p for _, p in weight_layers(model) if p.requires_grad]
    lrs: list[float] = []
    losses: list[float] = []
    average, lowest = 0.0, math.inf
    for i, lr in enumerate(schedule):
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = next(batches)
        x, y = data.x_train.index_select(0, index), data.y_train.index_select(0, index)
        loss = _train_step(model, optimizer, x, y, config, weights)
        average = smoothing * average + (1 - smoothing) * loss
        smoothed = average / (1 - smoothing ** (i + 1))
        if not math.isfinite(smoothed) or (
            i >= WARMUP_STEPS and smoothed > diverge_factor * lowest
        ):
            return lrs, losses, lr
        lrs.append(lr)
        losses.append(smoothed)
        lowest = min(lowest, smoothed)
    return lrs, losses, None


def _train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    weights: Sequence[torch.Tensor],
) -> float:
    """One optimiser step as `fit` takes it (elastic net, clipping); returns the task loss."""
    loss = task_loss(model(layout(x, model)), y, config.task)
    objective = loss + elastic_net(weights, config.l1, config.l1_ratio) if config.l1 else loss
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    if config.clip_value:
        nn.utils.clip_grad_value_(model.parameters(), config.clip_value)
    if config.clip_norm:
        nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
    optimizer.step()
    return float(loss.item())
