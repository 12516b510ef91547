"""Transfer learning on scikit-learn's digits: `init_from` starts a run, `freeze` holds layers."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainer import (
    ConfigError,
    Data,
    EpochResult,
    FileCheckpoint,
    TrainConfig,
    WeightsError,
    apply_transfer,
    build_model,
    fit,
    load_data,
    load_weights,
    lr_range_test,
    make_optimizer,
    save_weights,
)


def cfg(**changes: Any) -> TrainConfig:
    base = {"dataset": "digits", "device": "cpu", "hidden": (32,), "lr": 0.1, "momentum": 0.9}
    return TrainConfig(**{"epochs": 3, **base, **changes})


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def digits() -> Data:
    return load_data(cfg())


@pytest.fixture(scope="module")
def trained(digits: Data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weights of a (32,) MLP trained on all ten digits for three epochs."""
    path = tmp_path_factory.mktemp("source") / "digits.pt"
    save_weights(fit(cfg(), digits).model, path)
    return path


@pytest.fixture(scope="module")
def trained_bn(digits: Data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weights of a (32, 16) MLP with batch norm, trained on all ten digits."""
    path = tmp_path_factory.mktemp("source_bn") / "digits_bn.pt"
    save_weights(fit(cfg(hidden=(32, 16), batch_norm=True), digits).model, path)
    return path


@pytest.fixture(scope="module")
def high_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits 5 to 9 as classes 0 to 4, in an .npz file: a related task with other outputs."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = bunch.target >= 5
    path = tmp_path_factory.mktemp("high") / "high.npz"
    x = (bunch.images[keep] / 16.0).astype(np.float32)
    np.savez(path, x_train=x, y_train=bunch.target[keep] - 5)
    return path


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def curve(epochs: list[EpochResult]) -> list[tuple[Any, ...]]:
    """What an epoch computed, without its timing."""
    return [(e.train_loss, e.dev_loss, e.dev_accuracy, e.lr, e.grad_norm_mean) for e in epochs]


def test_a_run_starts_from_the_weights_of_init_from(digits: Data, trained: Path) -> None:
    slow = {"lr": 1e-4, "epochs": 1}  # an epoch that barely moves the weights
    fresh = fit(cfg(**slow), digits)
    warm = fit(cfg(init_from=str(trained), **slow), digits)
    assert fresh.epochs[0].dev_accuracy < 0.5
    assert warm.epochs[0].dev_accuracy > 0.85
    assert fresh.transfer is None and warm.transfer is not None
    assert warm.transfer.loaded == ("fc1.weight", "fc1.bias", "out.weight", "out.bias")
    assert warm.transfer.initialised == () and warm.transfer.unused == ()
    assert warm.transfer.source == str(trained.resolve())
    assert warm.transfer.sha256 == hashlib.sha256(trained.read_bytes()).hexdigest()


def test_a_new_output_layer_keeps_its_init_and_the_rest_loads(
    trained: Path, high_digits: Path
) -> None:
    config = cfg(dataset=str(high_digits), init_from=str(trained), init="he_normal")
    data = load_data(config)
    assert data.num_classes == 5
    torch.manual_seed(config.seed)
    own = build_model(config, data.input_shape, 5)
    torch.manual_seed(config.seed)
    model = build_model(config, data.input_shape, 5)
    transfer = apply_transfer(model, config)
    assert transfer is not None
    assert transfer.loaded == ("fc1.weight", "fc1.bias")
    assert transfer.initialised == ("out.weight", "out.bias")
    assert transfer.unused == ("out.weight", "out.bias")
    source, now, fresh = load_weights(trained), model.state_dict(), own.state_dict()
    assert torch.equal(now["fc1.weight"], source["fc1.weight"])
    assert torch.equal(now["out.weight"], fresh["out.weight"])  # the init scheme's draw
    assert not torch.equal(now["fc1.weight"], fresh["fc1.weight"])


def test_transfer_to_other_classes_trains(trained: Path, high_digits: Path) -> None:
    config = cfg(dataset=str(high_digits), init_from=str(trained), freeze=1, epochs=2)
    result = fit(config)
    assert result.transfer is not None and result.transfer.frozen == ("fc1.weight", "fc1.bias")
    assert result.epochs[-1].dev_accuracy > 0.85


@pytest.mark.parametrize(
    "changes",
    [
        {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
        {"optimizer": "adamw", "momentum": 0.0, "weight_decay": 0.5, "lr": 0.01},
        {"optimizer": "rmsprop", "weight_decay": 0.1, "lr": 0.01},
        {"l1": 0.01, "l1_ratio": 0.5, "weight_decay": 0.1},
    ],
    ids=["sgd-momentum-decay", "adamw-decay", "rmsprop-momentum-decay", "elastic-net"],
)
def test_frozen_layers_and_their_norms_never_move(
    digits: Data, trained_bn: Path, changes: dict[str, Any]
) -> None:
    config = cfg(hidden=(32, 16), batch_norm=True, init_from=str(trained_bn), freeze=1, **changes)
    start = load_weights(trained_bn)
    result = fit(config, digits)
    after = result.model.state_dict()
    held = [k for k in after if k.startswith(("fc1.", "bn1."))]  # bn1 sits between fc1 and fc2
    assert "bn1.running_mean" in held and "bn1.num_batches_tracked" in held
    assert all(torch.equal(after[k], start[k]) for k in held)
    assert not torch.equal(after["fc2.weight"], start["fc2.weight"])
    assert not torch.equal(after["bn2.running_mean"], start["bn2.running_mean"])
    assert not torch.equal(after["out.weight"], start["out.weight"])
    assert result.transfer is not None
    assert result.transfer.frozen == ("fc1.weight", "fc1.bias", "bn1.weight", "bn1.bias")
    for epoch in result.epochs:
        assert list(epoch.grad_norm_mean) == ["fc2.weight", "out.weight"]  # frozen: left out
        assert list(epoch.grad_norm_max) == ["fc2.weight", "out.weight"]


def test_freezing_without_init_from_holds_the_random_layer(digits: Data) -> None:
    config = cfg(freeze=1, weight_decay=0.1, epochs=1)
    torch.manual_seed(config.seed)
    start = build_model(config, digits.input_shape, digits.num_classes).state_dict()
    result = fit(config, digits)
    assert torch.equal(result.model.state_dict()["fc1.weight"], start["fc1.weight"])
    assert not torch.equal(result.model.state_dict()["out.weight"], start["out.weight"])
    assert result.transfer is not None and result.transfer.source == ""
    assert result.transfer.loaded == () and result.transfer.frozen == ("fc1.weight", "fc1.bias")


def test_the_optimiser_holds_no_frozen_parameter(digits: Data) -> None:
    config = cfg(hidden=(32, 16), freeze=2, weight_decay=0.1)
    model = build_model(config, digits.input_shape, digits.num_classes)
    apply_transfer(model, config)
    optimised = {
        id(p) for group in make_optimizer(model, config).param_groups for p in group["params"]
    }
    names = {name for name, p in model.named_parameters() if id(p) in optimised}
    assert names == {"out.weight", "out.bias"}


@pytest.mark.parametrize("freeze", [2, 5])
def test_freezing_every_weight_layer_is_refused(digits: Data, freeze: int) -> None:
    with pytest.raises(ConfigError) as info:
        fit(cfg(freeze=freeze, epochs=1), digits)
    message = str(info.value)
    assert f"freeze = {freeze} leaves no weight layer to train" in message
    assert "the network has 2 weight layers (fc1.weight, out.weight); freeze at most 1" in message


def test_weights_of_another_architecture_are_refused(digits: Data, tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    save_weights(torch.nn.Sequential(torch.nn.Linear(64, 10)), other)
    with pytest.raises(WeightsError) as info:
        fit(cfg(init_from=str(other)), digits)
    message = str(info.value)
    assert str(other) in message and "none of its parameters fits" in message
    assert "the network's entries: fc1.weight, fc1.bias, out.weight, out.bias" in message
    assert "the file's: 0.weight, 0.bias" in message


def test_same_names_of_other_shapes_are_named(digits: Data, tmp_path: Path) -> None:
    wide = tmp_path / "wide.pt"
    save_weights(build_model(cfg(hidden=(48,)), (1, 8, 8), 7), wide)
    with pytest.raises(WeightsError, match=r"fc1.weight: \(48, 64\) in the file, \(32, 64\)"):
        fit(cfg(init_from=str(wide)), digits)


def test_a_relative_init_from_is_found_on_the_search_path(
    digits: Data, trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = cfg(init_from=trained.name, epochs=1)
    result = fit(config, digits, search_path=[trained.parent])
    assert result.transfer is not None and result.transfer.source == str(trained.resolve())
    with pytest.raises(WeightsError, match=rf"no such weights file: {trained.name} \(looked in"):
        fit(config, digits)


def test_resume_with_init_from_equals_an_uninterrupted_run(
    digits: Data, trained_bn: Path, tmp_path: Path
) -> None:
    weights = tmp_path / "start.pt"
    weights.write_bytes(trained_bn.read_bytes())
    config = cfg(hidden=(32, 16), batch_norm=True, init_from=str(weights), freeze=1, epochs=4)
    whole = fit(config, digits)

    def stop_at_one(result: EpochResult) -> None:
        if result.epoch == 1:
            raise Stop

    store = FileCheckpoint(str(tmp_path / "run.pt"))
    with pytest.raises(Stop):
        fit(config, digits, on_epoch=stop_at_one, checkpoint=store)
    weights.write_bytes(b"changed since")  # a resumed run takes its weights from the checkpoint
    resumed = fit(config, digits, checkpoint=store)
    assert curve(resumed.epochs) == curve(whole.epochs)
    assert same_weights(resumed.model, whole.model)
    assert resumed.transfer == whole.transfer


def test_a_checkpoint_from_before_transfer_fields_resumes(digits: Data, tmp_path: Path) -> None:
    store = FileCheckpoint(str(tmp_path / "run.pt"))
    config = cfg(epochs=2)

    def stop_at_zero(result: EpochResult) -> None:
        raise Stop

    with pytest.raises(Stop):
        fit(config, digits, on_epoch=stop_at_zero, checkpoint=store)
    state = store.load()
    assert state is not None
    for key in ("init_from", "freeze"):
        del state["config"][key]
    store.save(state)
    assert len(fit(config, digits, checkpoint=store).epochs) == 2


def test_the_lr_range_test_starts_from_init_from(digits: Data, trained: Path) -> None:
    fresh = lr_range_test(cfg(), digits, steps=20, lr_min=1e-6, lr_max=1e-5)
    warm_config = cfg(init_from=str(trained), freeze=1, l1=0.01)
    warm = lr_range_test(warm_config, digits, steps=20, lr_min=1e-6, lr_max=1e-5)
    assert warm.losses[0] < fresh.losses[0] / 3
