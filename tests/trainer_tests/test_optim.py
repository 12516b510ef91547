from __future__ import annotations

import bisect
import math
from typing import Any

import pytest
import torch
from torch import nn

from trainer import (
    OPTIMIZERS,
    SCHEDULES,
    Data,
    TrainConfig,
    build_model,
    elastic_net,
    fit,
    make_optimizer,
    make_schedule,
)
from trainer._optim import step_schedule

EPOCHS = 12
# lr_sequence steps schedules without training, which torch warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")


def lr_sequence(config: TrainConfig, dev_losses: list[float] | None = None) -> list[float]:
    """The lr of each epoch, as `fit` steps the schedule once per epoch."""
    optimizer = make_optimizer(nn.Linear(2, 2), config)
    schedule = make_schedule(optimizer, config)
    lrs = []
    for epoch in range(config.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        step_schedule(schedule, dev_losses[epoch] if dev_losses else 1.0)
    return lrs


def torch_plateau(lr: float, factor: float, patience: int, losses: list[float]) -> list[float]:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=factor, patience=patience
    )
    lrs = []
    for loss in losses:
        lrs.append(optimizer.param_groups[0]["lr"])
        schedule.step(loss)
    return lrs


STALLED = [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6]

# schedule -> (config changes, the expected lr of epoch e); computed without the trainer.
EXPECTED: dict[str, tuple[dict[str, Any], Any]] = {
    "constant": ({}, lambda e: 0.1),
    "step": ({"step_size": 3, "gamma": 0.5}, lambda e: 0.1 * 0.5 ** (e // 3)),
    "exponential": ({"gamma": 0.9}, lambda e: 0.1 * 0.9**e),
    "piecewise": (
        {"milestones": (2, 5, 9), "gamma": 0.1},
        lambda e: 0.1 * 0.1 ** bisect.bisect_right([2, 5, 9], e),
    ),
    "cosine": (
        {"min_lr": 0.01},
        lambda e: 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * e / EPOCHS)) / 2,
    ),
    "reduce_on_plateau": (
        {"plateau_factor": 0.5, "plateau_patience": 1},
        lambda e: torch_plateau(0.1, 0.5, 1, STALLED)[e],
    ),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_matches_its_closed_form(name: str) -> None:
    changes, expected = EXPECTED[name]
    config = TrainConfig(lr=0.1, epochs=EPOCHS, schedule=name, **changes)
    got = lr_sequence(config, STALLED)
    assert got == pytest.approx([expected(e) for e in range(EPOCHS)], rel=1e-9)


def test_reduce_on_plateau_reacts_to_a_stalled_dev_loss() -> None:
    config = TrainConfig(
        lr=0.1, epochs=EPOCHS, schedule="reduce_on_plateau", plateau_factor=0.5, plateau_patience=1
    )
    lrs = lr_sequence(config, STALLED)
    # Epoch 2 set the best (0.7); epochs 3 and 4 did not beat it: the cut applies from epoch 5.
    assert lrs[:5] == [0.1] * 5
    assert lrs[5] == pytest.approx(0.05)
    assert lrs == sorted(lrs, reverse=True)
    assert lr_sequence(config, [1.0 - 0.01 * e for e in range(EPOCHS)]) == [0.1] * EPOCHS


def test_reduce_on_plateau_stops_at_min_lr() -> None:
    config = TrainConfig(
        lr=0.1,
        epochs=EPOCHS,
        schedule="reduce_on_plateau",
        plateau_factor=0.1,
        plateau_patience=0,
        min_lr=0.001,
    )
    assert min(lr_sequence(config, [1.0] * EPOCHS)) == pytest.approx(0.001)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_takes_a_step(name: str) -> None:
    config = TrainConfig(optimizer=name, lr=0.01, weight_decay=0.1)
    model = build_model(config, (4,), 2)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = make_optimizer(model, config)
    nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.arange(8) % 2).backward()
    optimizer.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_use_the_fused_kernels_where_torch_has_them(name: str) -> None:
    optimizer = make_optimizer(build_model(TrainConfig(), (4,), 2), TrainConfig(optimizer=name))
    has_fused = "fused" in optimizer.defaults
    assert optimizer.defaults.get("fused") is (True if has_fused else None)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_weight_decay_spares_biases(name: str) -> None:
    model = build_model(TrainConfig(batch_norm=True, hidden=(4,)), (4,), 2)
    optimizer = make_optimizer(model, TrainConfig(optimizer=name, weight_decay=0.1))
    for group in optimizer.param_groups:
        assert all((p.dim() > 1) == (group["weight_decay"] == 0.1) for p in group["params"])


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_every_optimizer_and_schedule_trains(
    optimizer: str, schedule: str, tiny_data: Data
) -> None:
    config = TrainConfig(
        optimizer=optimizer, schedule=schedule, milestones=(1,), epochs=2, hidden=(8,), device="cpu"
    )
    result = fit(config, tiny_data)
    assert result.status == "completed"
    assert all(math.isfinite(e.train_loss) for e in result.epochs)


def test_elastic_net_pure_l1_is_the_sum_of_absolute_values() -> None:
    weights = [torch.tensor([[1.0, -2.0]]), torch.tensor([3.0, -4.0])]
    assert elastic_net(weights, 0.5, 1.0).item() == pytest.approx(0.5 * 10.0)


def test_elastic_net_pure_l2_is_half_the_sum_of_squares() -> None:
    weights = [torch.tensor([[1.0, -2.0]]), torch.tensor([3.0, -4.0])]
    assert elastic_net(weights, 0.5, 0.0).item() == pytest.approx(0.5 * 0.5 * 30.0)


def test_elastic_net_mixes_linearly() -> None:
    weights = [torch.tensor([1.0, -2.0, 3.0])]
    mixed = elastic_net(weights, 2.0, 0.25).item()
    assert mixed == pytest.approx(2.0 * (0.25 * 6.0 + 0.75 * 0.5 * 14.0))


def test_elastic_net_gradient_pulls_towards_zero() -> None:
    w = torch.tensor([2.0, -3.0, 0.5], requires_grad=True)
    elastic_net([w], 0.1, 1.0).backward()
    assert w.grad is not None
    assert torch.equal(w.grad, 0.1 * torch.sign(w.detach()))
    w.grad = None
    elastic_net([w], 0.1, 0.0).backward()
    assert torch.allclose(w.grad, 0.1 * w.detach())
