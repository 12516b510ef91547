"""Optimisers and learning-rate schedules, as registries of small factories."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from trainer._config import TrainConfig

ParamGroups = list[dict[str, Any]]


def param_groups(model: nn.Module, weight_decay: float) -> ParamGroups:
    """Weight decay on weight matrices and kernels only, not on biases or batch-norm scales.

    Frozen parameters (``requires_grad`` off, see `freeze`) are left out: the optimiser never
    touches them, whatever its weight decay or momentum.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() > 1]
    other = [p for p in trainable if p.dim() <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]


# `fused`: one kernel per parameter instead of a dozen small ops; measured on a 2-core CPU it
# makes an MLP epoch ~27% shorter with Adam and ~12% with SGD. RMSprop has no fused form.
OPTIMIZERS: dict[str, Callable[[ParamGroups, TrainConfig], torch.optim.Optimizer]] = {
    "sgd": lambda groups, c: torch.optim.SGD(
        groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, fused=True
    ),
    "adagrad": lambda groups, c: torch.optim.Adagrad(groups, lr=c.lr, fused=True),
    "rmsprop": lambda groups, c: torch.optim.RMSprop(groups, lr=c.lr, momentum=c.momentum),
    "adam": lambda groups, c: torch.optim.Adam(groups, lr=c.lr, fused=True),
    "adamw": lambda groups, c: torch.optim.AdamW(groups, lr=c.lr, fused=True),
}


def _constant(_epoch: int) -> float:
    return 1.0


SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, TrainConfig], Any]] = {
    "constant": lambda opt, c: torch.optim.lr_scheduler.LambdaLR(opt, _constant),
    "piecewise": lambda opt, c: torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=list(c.milestones), gamma=c.gamma
    ),
    "step": lambda opt, c: torch.optim.lr_scheduler.StepLR(
        opt, step_size=c.step_size, gamma=c.gamma
    ),
    "exponential": lambda opt, c: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=c.gamma),
    "reduce_on_plateau": lambda opt, c: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=c.plateau_factor, patience=c.plateau_patience, min_lr=c.min_lr
    ),
    "cosine": lambda opt, c: torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(c.epochs, 1), eta_min=c.min_lr
    ),
}


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser over `model`'s parameters."""
    return OPTIMIZERS[config.optimizer](param_groups(model, config.weight_decay), config)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    """The configured schedule; call `step_schedule` once per epoch."""
    return SCHEDULES[config.schedule](optimizer, config)


def step_schedule(schedule: Any, dev_loss: float) -> None:
    """Advances a schedule by one epoch; reduce-on-plateau reads the dev loss."""
    if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
        schedule.step(dev_loss)
    else:
        schedule.step()


def elastic_net(weights: Sequence[torch.Tensor], strength: float, l1_ratio: float) -> torch.Tensor:
    """strength * (l1_ratio * sum|w| + (1 - l1_ratio) / 2 * sum w^2), as in scikit-learn."""
    l1 = sum(w.abs().sum() for w in weights) if l1_ratio > 0 else 0.0
    l2 = sum(w.pow(2).sum() for w in weights) if l1_ratio < 1 else 0.0
    return strength * (l1_ratio * l1 + (1.0 - l1_ratio) * 0.5 * l2)  # type: ignore[return-value]
