from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from trainer import (
    Data,
    EpochResult,
    FileCheckpoint,
    TrainConfig,
    build_model,
    evaluate,
    fit,
    make_optimizer,
    train_epoch,
    weight_layers,
)


def cfg(**changes: Any) -> TrainConfig:
    base = {"dataset": "synthetic", "hidden": (16, 8), "lr": 0.1, "epochs": 3, "device": "cpu"}
    return TrainConfig(**{**base, **changes})


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def curve(epochs: list[EpochResult]) -> list[tuple[float, float, float]]:
    return [(e.train_loss, e.dev_loss, e.lr) for e in epochs]


class Stop(Exception):
    pass


def test_epoch_results_describe_each_epoch(tiny_data: Data) -> None:
    seen: list[EpochResult] = []
    result = fit(cfg(batch_norm=True), tiny_data, on_epoch=seen.append)
    assert seen == result.epochs and result.status == "completed"
    assert [e.epoch for e in seen] == [0, 1, 2]
    layers = [name for name, _ in weight_layers(result.model)]
    assert layers == ["fc1.weight", "fc2.weight", "out.weight"]
    for e in seen:
        assert list(e.grad_norm_mean) == list(e.grad_norm_max) == layers  # input to output
        assert all(0 < e.grad_norm_mean[k] <= e.grad_norm_max[k] for k in layers)
        assert e.seconds > 0 and e.lr == 0.1
        assert 0.0 <= e.train_accuracy <= 1.0 and 0.0 <= e.dev_accuracy <= 1.0
        assert EpochResult.from_dict(e.to_dict()) == e
    assert seen[-1].dev_accuracy > 0.8  # the synthetic classes are easy


def test_each_epoch_records_when_it_ended(tiny_data: Data) -> None:
    import time

    before = time.time()
    result = fit(cfg(), tiny_data)
    ends = [e.finished_at for e in result.epochs]
    assert before <= ends[0] <= ends[1] <= ends[2] <= time.time()


def test_fit_is_repeatable(tiny_data: Data) -> None:
    config = cfg(dropout=0.3)
    first, second = fit(config, tiny_data), fit(config, tiny_data)
    assert curve(first.epochs) == curve(second.epochs)
    assert same_weights(first.model, second.model)
    third = fit(config.replace(seed=1), tiny_data)
    assert curve(third.epochs) != curve(first.epochs)


def initial_model(config: TrainConfig, data: Data) -> torch.nn.Module:
    torch.manual_seed(config.seed)  # as `fit` draws it
    return build_model(config, data.input_shape, data.num_classes)


@pytest.mark.parametrize("fractions", [(), (0.3, 0.7)])
def test_train_scores_sum_the_batches_trained(tiny_data: Data, fractions: tuple) -> None:
    # lr 1e-9: the weights barely move, so the epoch's batches score as the initial network
    config = cfg(lr=1e-9, epochs=1, batch_size=32, fractions=fractions)
    result = fit(config, tiny_data)
    start = evaluate(initial_model(config, tiny_data), tiny_data.x_train, tiny_data.y_train)
    assert result.epochs[0].train_accuracy == start.accuracy
    assert result.epochs[0].train_loss == pytest.approx(start.loss, rel=1e-5)
    assert [p.fraction for p in result.partials] == [pytest.approx(f, abs=0.01) for f in fractions]


def test_gradient_norms_of_one_batch(tiny_data: Data) -> None:
    config = cfg(lr=1e-9, epochs=1, batch_size=240)  # one batch: the whole training split
    epoch = fit(config, tiny_data).epochs[0]
    model = initial_model(config, tiny_data)
    model.train()
    torch.nn.functional.cross_entropy(model(tiny_data.x_train), tiny_data.y_train).backward()
    for name, weight in weight_layers(model):
        norm = torch.linalg.vector_norm(weight.grad).item()
        assert epoch.grad_norm_mean[name] == epoch.grad_norm_max[name]
        assert epoch.grad_norm_mean[name] == pytest.approx(norm, rel=1e-5)


def test_fit_flushes_subnormal_floats_on_the_cpu(tiny_data: Data) -> None:
    # A subnormal float (below ~1.2e-38 in float32) is slow microcode arithmetic: with flushing
    # it reads as zero. Turned off first, so that only `fit` can have turned it on.
    torch.set_flush_denormal(False)
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    assert (tiny * 1.0).item() != 0.0
    fit(cfg(), tiny_data)
    assert (tiny * 1.0).item() == 0.0


def test_fit_loads_the_data_of_its_config() -> None:
    result = fit(TrainConfig(dataset="digits", hidden=(8,), lr=0.1, momentum=0.9, epochs=1))
    assert result.status == "completed" and result.epochs[0].dev_accuracy > 0.5


def overfitting(**changes: Any) -> TrainConfig:
    """Few examples, many epochs, a large lr: the dev loss soon rises again."""
    base = {"lr": 0.5, "momentum": 0.9, "epochs": 40, "batch_size": 16, "hidden": (64,)}
    return cfg(**{**base, **changes})


def small(data: Data, n: int) -> Data:
    import dataclasses

    return dataclasses.replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])


def test_early_stopping_waits_patience_epochs(tiny_data: Data) -> None:
    result = fit(overfitting(patience=3), small(tiny_data, 30))
    assert result.status == "early_stopped"
    assert result.best_epoch is not None
    assert len(result.epochs) == result.best_epoch + 3 + 1
    best = result.epochs[result.best_epoch].dev_loss
    assert all(e.dev_loss >= best for e in result.epochs[result.best_epoch :])
    assert all(e.dev_loss > best for e in result.epochs[: result.best_epoch])


def test_model_selection_returns_the_best_epochs_weights(tiny_data: Data) -> None:
    result = fit(overfitting(patience=3), small(tiny_data, 30))
    best = result.best
    assert best is not None and best.epoch < len(result.epochs) - 1
    scores = evaluate(result.model, tiny_data.x_dev, tiny_data.y_dev)
    assert scores.loss == pytest.approx(best.dev_loss, rel=1e-6)
    assert scores.accuracy == best.dev_accuracy


def test_selection_on_dev_accuracy(tiny_data: Data) -> None:
    result = fit(overfitting(epochs=8, monitor="dev_accuracy"), small(tiny_data, 30))
    accuracies = [e.dev_accuracy for e in result.epochs]
    assert result.best_epoch == accuracies.index(max(accuracies))  # the first best one
    assert evaluate(result.model, tiny_data.x_dev, tiny_data.y_dev).accuracy == max(accuracies)


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_huge_lr_diverges_without_an_exception(
    tiny_data: Data, optimizer: str, batch_norm: bool
) -> None:
    seen: list[EpochResult] = []
    config = cfg(lr=1e12, optimizer=optimizer, momentum=0.9, batch_norm=batch_norm, epochs=5)
    result = fit(config, tiny_data, on_epoch=seen.append)
    assert result.status == "diverged"
    assert seen == result.epochs and len(seen) < 5
    assert not math.isfinite(seen[-1].train_loss) or not math.isfinite(seen[-1].dev_loss)
    assert result.best_epoch is None or math.isfinite(result.epochs[result.best_epoch].dev_loss)


def test_the_callback_can_stop_the_run(tiny_data: Data) -> None:
    seen: list[int] = []

    def stop_after_two(result: EpochResult) -> None:
        seen.append(result.epoch)
        if result.epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        fit(cfg(epochs=5), tiny_data, on_epoch=stop_after_two)
    assert seen == [0, 1]


@pytest.mark.parametrize(
    "changes",
    [{}, {"dropout": 0.3, "schedule": "step", "step_size": 2}, {"schedule": "reduce_on_plateau"}],
    ids=["plain", "dropout-step", "plateau"],
)
def test_resume_equals_an_uninterrupted_run(
    tiny_data: Data, tmp_path: Path, changes: dict[str, Any]
) -> None:
    config = cfg(epochs=5, momentum=0.9, **changes)
    whole = fit(config, tiny_data)

    def stop_at_two(result: EpochResult) -> None:
        if result.epoch == 2:
            raise Stop

    store = FileCheckpoint(str(tmp_path / "run.pt"))
    with pytest.raises(Stop):
        fit(config, tiny_data, on_epoch=stop_at_two, checkpoint=store)
    replayed: list[EpochResult] = []
    resumed = fit(config, tiny_data, on_epoch=replayed.append, checkpoint=store)
    assert curve(resumed.epochs) == curve(whole.epochs)
    assert replayed == resumed.epochs  # a new observer sees the whole curve
    assert resumed.best_epoch == whole.best_epoch
    assert same_weights(resumed.model, whole.model)


def test_a_finished_checkpoint_is_not_run_again(tiny_data: Data, tmp_path: Path) -> None:
    store = FileCheckpoint(str(tmp_path / "run.pt"))
    first = fit(cfg(), tiny_data, checkpoint=store)
    again = fit(cfg(), tiny_data, checkpoint=store)
    assert again.epochs == first.epochs and same_weights(again.model, first.model)


def test_a_checkpoint_of_another_config_is_refused(tiny_data: Data, tmp_path: Path) -> None:
    store = FileCheckpoint(str(tmp_path / "run.pt"))
    fit(cfg(epochs=1), tiny_data, checkpoint=store)
    with pytest.raises(ValueError, match=r"different config \(lr: 0.1 there, 0.2 here\)"):
        fit(cfg(epochs=1, lr=0.2), tiny_data, checkpoint=store)


def test_an_odd_last_batch_with_batch_norm(tiny_data: Data) -> None:
    data = small(tiny_data, 33)  # batches of 16, 16 and 1
    result = fit(cfg(batch_norm=True, batch_size=16, epochs=1), data)
    assert result.status == "completed" and math.isfinite(result.epochs[0].train_loss)


def test_selu_with_alpha_dropout_trains(tiny_data: Data) -> None:
    config = cfg(activation="selu", init="lecun_normal", dropout=0.2)
    result = fit(config, tiny_data)
    assert result.status == "completed" and result.epochs[-1].dev_accuracy > 0.6


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28)], ids=["digits", "mnist"])
def test_cnn_trains_on_images(shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, *shape, generator=generator)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    data = Data(x[:64], y[:64], x[64:], y[64:], None, None, 2, {"dataset": "images"})
    config = cfg(model="cnn", channels=(4, 8), hidden=(8,), batch_norm=True, epochs=2)
    result = fit(config, data)
    assert result.status == "completed"
    assert [n for n, _ in weight_layers(result.model)][:2] == ["conv1.weight", "conv2.weight"]
    # Channels-last: the layout in which CPU convolutions and pooling run fastest.
    kernel = dict(weight_layers(result.model))["conv2.weight"]
    assert kernel.is_contiguous(memory_format=torch.channels_last)


def test_l1_penalty_shrinks_weights(tiny_data: Data) -> None:
    plain = fit(cfg(epochs=2), tiny_data).model
    sparse = fit(cfg(epochs=2, l1=0.01), tiny_data).model
    norm = lambda m: sum(p.abs().sum().item() for _, p in weight_layers(m))  # noqa: E731
    assert norm(sparse) < norm(plain)


class Recording(torch.optim.SGD):
    """SGD that remembers the largest gradient element and norm it was asked to apply."""

    largest = 0.0
    largest_norm = 0.0

    def step(self, closure: Any = None) -> Any:
        grads = [p.grad for group in self.param_groups for p in group["params"]]
        flat = torch.cat([g.flatten() for g in grads if g is not None])
        self.largest = max(self.largest, flat.abs().max().item())
        self.largest_norm = max(self.largest_norm, flat.norm().item())
        return super().step(closure)


@pytest.mark.parametrize(
    ("changes", "bound"),
    [({"clip_value": 1e-3}, "largest"), ({"clip_norm": 1e-2}, "largest_norm")],
)
def test_clipping_bounds_the_applied_gradients(
    tiny_data: Data, changes: dict[str, float], bound: str
) -> None:
    config = cfg(lr=1.0, **changes)
    limit = next(iter(changes.values()))
    torch.manual_seed(0)
    model = build_model(config, tiny_data.input_shape, tiny_data.num_classes)
    optimizer = Recording(model.parameters(), lr=0.1)
    stats = train_epoch(model, optimizer, tiny_data, config, torch.Generator().manual_seed(0))
    assert getattr(optimizer, bound) <= limit * (1 + 1e-5)
    # The statistics are those of the raw gradients: larger than the clipped ones.
    assert max(stats["grad_norm_max"].values()) > limit


def test_unclipped_gradients_exceed_those_bounds(tiny_data: Data) -> None:
    config = cfg()
    torch.manual_seed(0)
    model = build_model(config, tiny_data.input_shape, tiny_data.num_classes)
    optimizer = Recording(model.parameters(), lr=0.1)
    train_epoch(model, optimizer, tiny_data, config, torch.Generator().manual_seed(0))
    assert optimizer.largest > 1e-3 and optimizer.largest_norm > 1e-2


def test_make_optimizer_is_what_fit_uses(tiny_data: Data) -> None:
    config = cfg(optimizer="adam", lr=0.01)
    model = build_model(config, tiny_data.input_shape, tiny_data.num_classes)
    assert isinstance(make_optimizer(model, config), torch.optim.Adam)
