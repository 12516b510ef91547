from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tests.trainer_tests.user_code import MODELS, write_package
from trainer import (
    Data,
    EpochResult,
    FileCheckpoint,
    TrainConfig,
    UserCodeError,
    build_model,
    check_model,
    fans,
    fit,
    load_factory,
    weight_layers,
)


def cfg(model: str, **changes: Any) -> TrainConfig:
    base = {"dataset": "synthetic", "lr": 0.1, "epochs": 3, "device": "cpu", "model": model}
    return TrainConfig(**{**base, **changes})


def test_factory_from_a_file_gets_model_args(models_py: Path) -> None:
    config = cfg(f"{models_py}:build", model_args={"width": 12, "depth": 2})
    model = build_model(config, (1, 6, 6), 3)
    widths = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
    assert widths == [12, 12, 3]
    assert model(torch.randn(5, 1, 6, 6)).shape == (5, 3)


def test_factory_from_a_module_path(tmp_path: Path) -> None:
    module = write_package(tmp_path, MODELS)
    config = cfg(f"{module}:build", model_args={"width": 7})
    model = build_model(config, (4,), 2, search_path=[tmp_path])
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [7, 2]


def test_config_settings_go_only_where_the_signature_names_them(models_py: Path) -> None:
    model = build_model(cfg(f"{models_py}:build", dropout=0.3), (4,), 2)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3]
    # `build` takes no batch_norm or activation: at their defaults they are not passed.
    build_model(cfg(f"{models_py}:build"), (4,), 2)


def test_an_open_factory_gets_every_setting(models_py: Path) -> None:
    config = cfg(f"{models_py}:build_open", model_args={"gain": 2}, activation="tanh")
    build_model(config, (4,), 2)
    seen = load_factory(f"{models_py}:build_open").function.seen  # type: ignore[attr-defined]
    assert seen == {"dropout": 0.0, "batch_norm": False, "activation": "tanh", "gain": 2}


def test_a_setting_the_factory_cannot_take_is_an_error(models_py: Path) -> None:
    with pytest.raises(UserCodeError, match="has no 'batch_norm' parameter, but the config sets"):
        build_model(cfg(f"{models_py}:build", batch_norm=True), (4,), 2)


def test_an_unexpected_model_arg_names_the_key_and_the_parameters(models_py: Path) -> None:
    config = cfg(f"{models_py}:build", model_args={"widht": 3})
    with pytest.raises(UserCodeError) as info:
        build_model(config, (4,), 2)
    assert "does not take model_args.widht (did you mean 'width'?)" in str(info.value)
    assert "(its parameters: input_shape, num_classes, width, depth, dropout)" in str(info.value)


def test_a_needed_argument_that_is_not_given(models_py: Path) -> None:
    with pytest.raises(UserCodeError, match=r"needs width; set model_args\.width"):
        build_model(cfg(f"{models_py}:build_strict"), (4,), 2)


def test_a_factory_that_names_no_shapes_is_called_without_them(models_py: Path) -> None:
    model = build_model(cfg(f"{models_py}:build_no_shape", model_args={"width": 4}), (4,), 2)
    assert isinstance(model, torch.nn.Linear)
    assert model.in_features == 4


def test_a_factory_that_raises(models_py: Path) -> None:
    with pytest.raises(UserCodeError, match=r"raised RuntimeError: no GPU here \(called with"):
        build_model(cfg(f"{models_py}:build_raising"), (4,), 2)


def test_a_factory_that_returns_no_module(models_py: Path) -> None:
    with pytest.raises(UserCodeError, match=r"returned a str, not a torch\.nn\.Module"):
        build_model(cfg(f"{models_py}:build_not_a_module"), (4,), 2)


def test_check_model_passes_a_fitting_model(models_py: Path, tiny_data: Data) -> None:
    state = torch.get_rng_state()
    check_model(cfg(f"{models_py}:build"), tiny_data)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is untouched


def test_check_model_reports_a_failing_forward_with_the_input_shape(
    models_py: Path, tiny_data: Data
) -> None:
    with pytest.raises(UserCodeError) as info:
        check_model(cfg(f"{models_py}:build_broken"), tiny_data)
    assert "failed on a batch of inputs of shape (4, 1, 6, 6)" in str(info.value)
    assert "RuntimeError" in str(info.value)  # the exception's own text follows


def test_check_model_reports_a_wrong_output_shape(models_py: Path, tiny_data: Data) -> None:
    with pytest.raises(UserCodeError) as info:
        check_model(cfg(f"{models_py}:build_wrong_width"), tiny_data)
    assert "gives outputs of shape (4, 4)" in str(info.value)
    assert "classification with 3 outputs needs (4, 3): one logit per class" in str(info.value)


def test_check_model_reports_a_factory_that_returns_no_module(
    models_py: Path, tiny_data: Data
) -> None:
    with pytest.raises(UserCodeError, match=r"not a torch\.nn\.Module"):
        check_model(cfg(f"{models_py}:build_not_a_module"), tiny_data)


def regression_data(n: int = 80, features: int = 3, outputs: int = 1) -> Data:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=generator)
    y = x[:, :outputs] * 2.0 + 0.1 * torch.randn(n, outputs, generator=generator)
    half = n // 2
    return Data(x[:half], y[:half], x[half:], y[half:], None, None, outputs, {}, task="regression")


def test_one_flat_output_fits_a_one_column_regression(models_py: Path) -> None:
    config = cfg(f"{models_py}:build_one_output", task="regression", monitor="dev_r2")
    check_model(config, regression_data())
    result = fit(config.replace(epochs=5, lr=0.05), regression_data())
    assert result.best is not None and result.best.dev_r2 > 0.5


def test_one_flat_output_does_not_fit_classification(models_py: Path) -> None:
    labels = dataclasses.replace(
        regression_data(), task="classification", y_train=torch.zeros(40, dtype=torch.long)
    )
    with pytest.raises(UserCodeError, match=r"gives outputs of shape \(4,\)"):
        check_model(cfg(f"{models_py}:build_one_output"), labels)


def test_fit_checks_the_model_first(models_py: Path, tiny_data: Data) -> None:
    seen: list[EpochResult] = []
    with pytest.raises(UserCodeError, match="gives outputs of shape"):
        fit(cfg(f"{models_py}:build_wrong_width"), tiny_data, on_epoch=seen.append)
    assert seen == []


@pytest.mark.parametrize("scheme", ["he_normal", "glorot_uniform", "lecun_normal"])
def test_init_scheme_reaches_the_users_layers(models_py: Path, scheme: str) -> None:
    torch.manual_seed(0)
    model = build_model(cfg(f"{models_py}:Deep", init=scheme), (400,), 3)
    layers = [
        m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d)
    ]
    assert {type(m) for m in layers} == {nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d}
    for layer in layers:
        weight = layer.weight.detach()
        fan_in, fan_out = fans(weight)
        variance = {
            "he_normal": 2.0 / fan_in,
            "glorot_uniform": 2.0 / (fan_in + fan_out),
            "lecun_normal": 1.0 / fan_in,
        }[scheme]
        assert weight.var().item() == pytest.approx(variance, rel=0.1), layer
        assert torch.count_nonzero(layer.bias) == 0


def test_default_init_keeps_the_users_own(models_py: Path) -> None:
    torch.manual_seed(0)
    own = build_model(cfg(f"{models_py}:Deep"), (400,), 3)
    torch.manual_seed(0)
    plain = load_factory(f"{models_py}:Deep").function(input_shape=(400,), num_classes=3)
    assert all(torch.equal(a, b) for a, b in zip(own.parameters(), plain.parameters(), strict=True))


class Stop(Exception):
    pass


def curve(epochs: list[EpochResult]) -> list[tuple[float, float, float]]:
    return [(e.train_loss, e.dev_loss, e.dev_accuracy) for e in epochs]


def test_fit_a_user_model_and_resume_it(models_py: Path, tiny_data: Data, tmp_path: Path) -> None:
    config = cfg(
        f"{models_py}:build", model_args={"width": 16}, dropout=0.2, epochs=4, momentum=0.9
    )
    whole = fit(config, tiny_data)
    assert whole.status == "completed" and whole.epochs[-1].dev_accuracy > 0.8
    assert [name for name, _ in weight_layers(whole.model)] == ["1.weight", "4.weight"]
    assert all(len(e.grad_norm_mean) == 2 for e in whole.epochs)
    assert whole.factory == load_factory(f"{models_py}:build").identity()

    def stop_at_one(result: EpochResult) -> None:
        if result.epoch == 1:
            raise Stop

    store = FileCheckpoint(str(tmp_path / "run.pt"))
    with pytest.raises(Stop):
        fit(config, tiny_data, on_epoch=stop_at_one, checkpoint=store)
    resumed = fit(config, tiny_data, checkpoint=store)
    assert curve(resumed.epochs) == curve(whole.epochs)
    assert resumed.best_epoch == whole.best_epoch
    whole_state, resumed_state = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(whole_state[k], resumed_state[k]) for k in whole_state)
    assert all(math.isnan(e.dev_rmse) and math.isnan(e.dev_r2) for e in resumed.epochs)
