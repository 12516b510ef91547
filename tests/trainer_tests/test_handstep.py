"""The built-in MLP's hand-written training step (`MlpStep`) against autograd, its oracle."""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from trainer import (
    ACTIVATIONS,
    Data,
    EpochResult,
    FileCheckpoint,
    MlpStep,
    TrainConfig,
    build_model,
    fit,
    make_optimizer,
    why_autograd,
)


def cfg(**changes: Any) -> TrainConfig:
    base = {"dataset": "synthetic", "hidden": (16, 8), "lr": 0.1, "epochs": 3, "device": "cpu"}
    return TrainConfig(**{**base, **changes})


def regression_data(data: Data, columns: int = 2) -> Data:
    """`data`'s inputs with targets of `columns` float columns."""
    generator = torch.Generator().manual_seed(1)
    w = torch.randn(36, columns, generator=generator)
    return dataclasses.replace(
        data,
        y_train=data.x_train.flatten(1) @ w,
        y_dev=data.x_dev.flatten(1) @ w,
        y_test=None if data.x_test is None else data.x_test.flatten(1) @ w,
        num_classes=columns,
        task="regression",
    )


def model_for(config: TrainConfig, data: Data) -> torch.nn.Module:
    torch.manual_seed(config.seed)
    return build_model(config, data.input_shape, data.num_classes).train()


def autograd_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str) -> Any:
    output = model(x)
    if task == "regression":
        return output, F.mse_loss(output.reshape(y.shape), y)
    return output, F.cross_entropy(output, y)


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    """Equal to float32 rounding: within `rel` of the larger tensor's largest element."""
    largest = max(a.abs().max().item(), b.abs().max().item(), 1e-30)
    return (a - b).abs().max().item() <= rel * largest


CASES = [
    *({"activation": name} for name in sorted(ACTIVATIONS)),
    {"dropout": 0.3},
    {"dropout": 0.3, "activation": "tanh"},
    {"weight_decay": 0.01, "hidden": (16,)},
    {"hidden": ()},  # logistic regression: one linear layer
]


@pytest.mark.parametrize("changes", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_the_built_in_mlp_is_trained_by_hand(tiny_data: Data, changes: dict[str, Any]) -> None:
    config = cfg(**changes)
    assert why_autograd(model_for(config, tiny_data), config, tiny_data) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"batch_norm": True}, "BatchNorm1d"),
        ({"activation": "selu", "dropout": 0.2}, "AlphaDropout"),
        ({"l1": 0.01}, "l1"),
        ({"model": "cnn", "channels": (4,), "hidden": (8,)}, "'cnn'"),
    ],
)
def test_autograd_trains_what_the_step_does_not_cover(
    tiny_data: Data, changes: dict[str, Any], reason: str
) -> None:
    config = cfg(**changes)
    assert reason in (why_autograd(model_for(config, tiny_data), config, tiny_data) or "")


def test_a_factory_network_is_trained_by_autograd_even_when_built_alike(tiny_data: Data) -> None:
    built_in = cfg()
    model = model_for(built_in, tiny_data)  # the same modules a factory might return
    reason = why_autograd(model, cfg(model="models.py:build"), tiny_data)
    assert reason is not None and "models.py:build" in reason


def test_frozen_layers_are_trained_by_autograd(tiny_data: Data) -> None:
    config = cfg()
    model = model_for(config, tiny_data)
    model.get_parameter("fc1.weight").requires_grad_(False)
    assert "frozen" in (why_autograd(model, config, tiny_data) or "")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_network_on_a_gpu_is_trained_by_autograd(tiny_data: Data) -> None:
    config = cfg(device="cuda")
    data = tiny_data.to(torch.device("cuda"))
    model = model_for(config, data).cuda()
    assert "CPU" in (why_autograd(model, config, data) or "")


def test_inputs_of_another_dtype_are_trained_by_autograd(tiny_data: Data) -> None:
    config = cfg()
    data = dataclasses.replace(tiny_data, x_train=tiny_data.x_train.double())
    assert "float32" in (why_autograd(model_for(config, data), config, data) or "")


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("changes", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_gradients_equal_autograds(tiny_data: Data, task: str, changes: dict[str, Any]) -> None:
    data = tiny_data if task == "classification" else regression_data(tiny_data)
    config = cfg(task=task, **changes)
    by_hand = model_for(config, data)
    oracle = copy.deepcopy(by_hand)
    step = MlpStep(by_hand, make_optimizer(by_hand, config), data, config)
    for rows in (64, 17):  # a full batch and a short one: buffers of two sizes
        index = torch.randperm(len(data.y_train))[:rows]
        y = data.y_train[index]
        torch.manual_seed(5)  # the same dropout masks on both sides
        output, loss = step(index, y)
        output, loss = output.clone(), loss.clone()
        torch.manual_seed(5)
        oracle.zero_grad()
        expected_output, expected_loss = autograd_loss(oracle, data.x_train[index], y, task)
        expected_loss.backward()
        assert close(output, expected_output.detach())
        assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)
        mine, theirs = dict(by_hand.named_parameters()), dict(oracle.named_parameters())
        for name, p in theirs.items():
            assert close(mine[name].grad, p.grad), name  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"momentum": 0.9},
        {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        {"momentum": 0.0},
        {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.01},
        {"optimizer": "rmsprop", "lr": 0.01, "momentum": 0.5},
    ],
    ids=["momentum", "nesterov-decay", "plain", "adam", "rmsprop"],
)
def test_updates_and_optimizer_state_equal_torchs(tiny_data: Data, changes: dict[str, Any]) -> None:
    config = cfg(dropout=0.2, **changes)
    by_hand = model_for(config, tiny_data)
    oracle = copy.deepcopy(by_hand)
    hand_opt, oracle_opt = make_optimizer(by_hand, config), make_optimizer(oracle, config)
    step = MlpStep(by_hand, hand_opt, tiny_data, config)
    for k in range(4):
        if k == 2:  # as a schedule changes it, between steps
            for group in [*hand_opt.param_groups, *oracle_opt.param_groups]:
                group["lr"] *= 0.5
        index = torch.arange(32 * k, 32 * k + 32)
        y = tiny_data.y_train[index]
        torch.manual_seed(k)
        step(index, y)
        step.update()
        torch.manual_seed(k)
        oracle_opt.zero_grad()
        autograd_loss(oracle, tiny_data.x_train[index], y, config.task)[1].backward()
        oracle_opt.step()
    for (name, p), q in zip(by_hand.named_parameters(), oracle.parameters(), strict=True):
        assert close(p, q, rel=1e-5), name
    mine, theirs = hand_opt.state_dict(), oracle_opt.state_dict()
    assert mine["param_groups"] == theirs["param_groups"]
    assert mine["state"].keys() == theirs["state"].keys()
    for i, state in theirs["state"].items():
        assert state.keys() == mine["state"][i].keys()
        for key, value in state.items():
            assert close(mine["state"][i][key], value, rel=1e-5), (i, key)
    oracle_opt.load_state_dict(mine)  # a checkpoint of the hand-written step loads into torch's


def test_a_subclassed_optimizer_runs_its_own_step(tiny_data: Data) -> None:
    calls = []

    class Counting(torch.optim.SGD):
        def step(self, closure: Any = None) -> Any:
            calls.append(1)
            return super().step(closure)

    config = cfg()
    model = model_for(config, tiny_data)
    step = MlpStep(model, Counting(model.parameters(), lr=0.1), tiny_data, config)
    step(torch.arange(8), tiny_data.y_train[:8])
    step.update()
    assert calls == [1]


def test_a_schedule_sees_the_optimizer_stepped(tiny_data: Data) -> None:
    # torch's schedules warn when stepped before the optimiser; the direct SGD kernel must not
    # look like that
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fit(cfg(momentum=0.9, schedule="step", step_size=1, gamma=0.5), tiny_data)
    assert [e.lr for e in result.epochs] == [0.1, 0.05, 0.025]


def curve(epochs: list[EpochResult]) -> list[tuple[float | None, ...]]:
    """What an epoch measured, NaN (regression's accuracy) as None so that it compares."""
    return [
        tuple(
            None if math.isnan(v) else v
            for v in (e.train_loss, e.train_accuracy, e.dev_loss, *e.grad_norm_mean.values(), e.lr)
        )
        for e in epochs
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"dropout": 0.3, "momentum": 0.9, "nesterov": True},
        {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.01, "dropout": 0.2},
        {"task": "regression", "monitor": "dev_loss", "lr": 0.01},
    ],
    ids=["sgd", "adam", "regression"],
)
def test_two_runs_are_identical_and_a_resumed_run_equals_them(
    tiny_data: Data, tmp_path: Path, changes: dict[str, Any]
) -> None:
    config = cfg(epochs=4, **changes)
    data = regression_data(tiny_data) if config.task == "regression" else tiny_data
    first, second = fit(config, data), fit(config, data)
    assert curve(first.epochs) == curve(second.epochs)

    class Stop(Exception):
        pass

    def stop_at_one(result: EpochResult) -> None:
        if result.epoch == 1:
            raise Stop

    store = FileCheckpoint(str(tmp_path / "run.pt"))
    with pytest.raises(Stop):
        fit(config, data, on_epoch=stop_at_one, checkpoint=store)
    resumed = fit(config, data, checkpoint=store)
    assert curve(resumed.epochs) == curve(first.epochs)
    mine, theirs = resumed.model.state_dict(), first.model.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in theirs)


def test_stretches_cut_at_batch_boundaries_train_as_one_pass(tiny_data: Data) -> None:
    from trainer._fit import EpochPass

    config = cfg(batch_size=16, momentum=0.9, dropout=0.2)
    perm = torch.randperm(240, generator=torch.Generator().manual_seed(3))
    passes = {}
    for ends in [(240,), (96, 240), (100, 240)]:  # 100: a short batch of 4 at the boundary
        model = model_for(config, tiny_data)
        epoch = EpochPass(model, make_optimizer(model, config), tiny_data, config, perm)
        assert epoch.by_hand is not None
        torch.manual_seed(0)
        for end in ends:
            epoch.train_to(end)
        passes[ends] = (epoch.steps, epoch.summary(), model.state_dict())
    whole, cut, short = passes[(240,)], passes[(96, 240)], passes[(100, 240)]
    assert whole[0] == cut[0] == 15 and short[0] == 16
    assert whole[1] == cut[1]
    assert all(torch.equal(whole[2][k], cut[2][k]) for k in whole[2])
    assert short[1]["train_accuracy"] == pytest.approx(whole[1]["train_accuracy"], abs=0.1)
