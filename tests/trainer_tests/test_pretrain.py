from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainer import (
    ConfigError,
    Data,
    DataUnavailableError,
    EpochResult,
    FileCheckpoint,
    PretrainEpoch,
    TrainConfig,
    build_model,
    cross_fit,
    fit,
    load_data,
    lr_range_test,
    pretrain,
)


def cfg(**changes: Any) -> TrainConfig:
    base = {"dataset": "digits", "device": "cpu", "hidden": (16, 8), "lr": 0.1, "momentum": 0.9}
    return TrainConfig(**{"epochs": 2, "pretrain_epochs": 2, **base, **changes})


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def digits() -> Data:
    return load_data(cfg())


def pretrained(config: TrainConfig, data: Data) -> tuple[torch.nn.Module, list[Any]]:
    torch.manual_seed(config.seed)
    model = build_model(config, data.input_shape, data.num_classes)
    return model, pretrain(model, data, config)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def losses(records: list[PretrainEpoch]) -> list[tuple[str, int, float, int]]:
    return [(r.layer, r.epoch, r.loss, r.rows) for r in records]


def curve(epochs: list[EpochResult]) -> list[tuple[Any, ...]]:
    return [(e.epoch, e.train_loss, e.dev_loss) for e in epochs]


def test_hidden_layers_are_pretrained_in_turn_input_side_first(digits: Data) -> None:
    result = fit(cfg(pretrain_epochs=3), digits)
    assert [(r.layer, r.epoch) for r in result.pretraining] == [
        ("fc1.weight", 0),
        ("fc1.weight", 1),
        ("fc1.weight", 2),
        ("fc2.weight", 0),
        ("fc2.weight", 1),
        ("fc2.weight", 2),
    ]
    first = [r.loss for r in result.pretraining[:3]]
    assert first[-1] < first[0]  # the autoencoder learns to reconstruct
    assert len(result.epochs) == 2  # the supervised epochs are counted apart


def test_a_lower_layer_is_finished_before_the_next_is_trained(digits: Data) -> None:
    deep, _ = pretrained(cfg(hidden=(16, 8)), digits)
    shallow, _ = pretrained(cfg(hidden=(16,)), digits)
    torch.manual_seed(0)
    untouched = build_model(cfg(hidden=(16, 8)), digits.input_shape, digits.num_classes)
    # layer 2's pre-training leaves layer 1 exactly as its own pre-training left it
    assert torch.equal(deep.fc1.weight, shallow.fc1.weight)
    assert not torch.equal(deep.fc1.weight, untouched.fc1.weight)
    assert not torch.equal(deep.fc2.weight, untouched.fc2.weight)
    assert torch.equal(deep.out.weight, untouched.out.weight)  # the output layer waits


def test_the_noise_level_changes_what_is_learnt(digits: Data) -> None:
    clean, clean_records = pretrained(cfg(pretrain_noise=0.0), digits)
    noisy, noisy_records = pretrained(cfg(pretrain_noise=0.5), digits)
    assert not torch.equal(clean.fc1.weight, noisy.fc1.weight)
    # masking half the inputs makes them harder to reconstruct
    assert noisy_records[1].loss > clean_records[1].loss


def test_pretraining_is_seeded_and_leaves_the_global_random_state(digits: Data) -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state()
    model_a, records_a = pretrained(cfg(), digits)
    model_b, records_b = pretrained(cfg(), digits)
    assert same_weights(model_a, model_b)
    assert [r.loss for r in records_a] == [r.loss for r in records_b]
    torch.manual_seed(0)
    model = build_model(cfg(), digits.input_shape, digits.num_classes)
    state = torch.get_rng_state()
    pretrain(model, digits, cfg())
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(before, state)


def write_npz(path: Path, unlabeled: int) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200 + unlabeled, 12)).astype(np.float32)
    y = (x[:200, 0] > 0).astype(np.int64)
    np.savez(path, x_train=x[:200], y_train=y, x_unlabeled=x[200:])
    return path


def test_the_unlabelled_rows_of_an_npz_are_pretrained_on(tmp_path: Path) -> None:
    config = cfg(dataset=str(write_npz(tmp_path / "d.npz", unlabeled=300)), hidden=(8,))
    data = load_data(config)
    assert data.x_unlabeled is not None and data.x_unlabeled.shape == (300, 12)
    assert data.identity["unlabeled"] == 300
    with_rows = fit(config, data)
    assert {r.rows for r in with_rows.pretraining} == {300 + len(data.y_train)}
    alone = fit(config, dataclasses.replace(data, x_unlabeled=None))
    assert {r.rows for r in alone.pretraining} == {len(data.y_train)}
    assert not torch.equal(with_rows.model.fc1.weight, alone.model.fc1.weight)


def test_unlabelled_rows_must_be_shaped_like_the_training_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    x = np.zeros((20, 4), dtype=np.float32)
    np.savez(path, x_train=x, y_train=np.arange(20) % 2, x_unlabeled=np.zeros((5, 3)))
    with pytest.raises(DataUnavailableError, match="x_unlabeled"):
        load_data(cfg(dataset=str(path)))


def test_labels_keeps_a_stratified_share_and_unlabels_the_rest(digits: Data) -> None:
    data = load_data(cfg(labels=50))
    assert len(data.y_train) == 50
    assert torch.bincount(data.y_train).tolist() == [5] * 10
    assert data.x_unlabeled is not None
    assert len(data.x_unlabeled) + 50 == len(digits.y_train)
    assert torch.equal(data.x_dev, digits.x_dev)  # the dev split is the same
    # every training row is kept once: labelled or unlabelled
    split = sorted(tuple(r.flatten().tolist()) for r in torch.cat([data.x_train, data.x_unlabeled]))
    assert split == sorted(tuple(r.flatten().tolist()) for r in digits.x_train)
    again = load_data(cfg(labels=50))
    assert torch.equal(again.x_train, data.x_train)


@pytest.mark.parametrize("labels", [5, 100_000])
def test_labels_out_of_range_is_refused(labels: int) -> None:
    with pytest.raises(DataUnavailableError, match="labels = "):
        load_data(cfg(labels=labels))


def test_bad_pretraining_settings_are_refused() -> None:
    with pytest.raises(ConfigError) as info:
        cfg(pretrain_epochs=-1, pretrain_noise=1.0, labels=-2)
    text = str(info.value)
    assert "pretrain_epochs" in text and "pretrain_noise" in text and "labels must" in text
    with pytest.raises(ConfigError, match="not 'cnn'"):
        cfg(model="cnn")
    with pytest.raises(ConfigError, match="init_from and freeze"):
        cfg(freeze=1)


class MemoryCheckpoint:
    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    def load(self) -> dict[str, Any] | None:
        return self.saved[-1] if self.saved else None

    def save(self, state: dict[str, Any]) -> None:
        self.saved.append(copy.deepcopy(state))  # the live tensors change as training goes on


def test_a_run_stopped_after_pretraining_resumes_from_the_pretrained_state(
    digits: Data,
) -> None:
    config = cfg(epochs=3, dropout=0.2)
    whole = fit(config, digits)
    store = MemoryCheckpoint()

    def stop_at_once(result: EpochResult) -> None:
        raise Stop

    with pytest.raises(Stop):
        fit(config, digits, on_epoch=stop_at_once, checkpoint=store)
    first = store.saved[3]  # saved when pre-training ended, before any supervised epoch
    assert first["epochs"] == [] and len(first["pretraining"]) == 4
    store.saved = [first]
    resumed = fit(config, digits, checkpoint=store)
    assert [r.to_dict() for r in resumed.pretraining] == first["pretraining"]  # not run again
    assert losses(resumed.pretraining) == losses(whole.pretraining)
    assert curve(resumed.epochs) == curve(whole.epochs)
    assert same_weights(resumed.model, whole.model)


class Killed(Exception):
    pass


class KilledAfter(MemoryCheckpoint):
    """A store whose process dies right after its `saves`-th save."""

    def __init__(self, saves: int) -> None:
        super().__init__()
        self.saves = saves

    def save(self, state: dict[str, Any]) -> None:
        super().save(state)
        if len(self.saved) == self.saves:
            raise Killed


@pytest.mark.parametrize("saves", [1, 2, 4])  # in layer 1, between the layers, in layer 2
def test_a_run_stopped_during_pretraining_goes_on_from_its_last_epoch(
    digits: Data, saves: int
) -> None:
    config = cfg(epochs=2, pretrain_epochs=3, dropout=0.2)
    whole = fit(config, digits)
    store = KilledAfter(saves)
    with pytest.raises(Killed):
        fit(config, digits, checkpoint=store)
    assert "pretraining_progress" in store.saved[-1]
    done = store.saved[-1]["pretraining_progress"]["records"]
    assert len(done) == saves
    store.saves = 0
    resumed = fit(config, digits, checkpoint=store)
    assert [r.to_dict() for r in resumed.pretraining[:saves]] == done  # not run again
    assert losses(resumed.pretraining) == losses(whole.pretraining)
    assert curve(resumed.epochs) == curve(whole.epochs)
    assert same_weights(resumed.model, whole.model)


def test_a_run_stopped_mid_training_resumes_without_pretraining_again(
    digits: Data, tmp_path: Path
) -> None:
    config = cfg(epochs=3)
    whole = fit(config, digits)

    def stop_at_one(result: EpochResult) -> None:
        if result.epoch == 1:
            raise Stop

    store = FileCheckpoint(str(tmp_path / "run.pt"))
    with pytest.raises(Stop):
        fit(config, digits, on_epoch=stop_at_one, checkpoint=store)
    resumed = fit(config, digits, checkpoint=store)
    assert losses(resumed.pretraining) == losses(whole.pretraining)
    assert curve(resumed.epochs) == curve(whole.epochs)
    assert same_weights(resumed.model, whole.model)


def test_an_exported_config_retrains_to_the_same_network(digits: Data, tmp_path: Path) -> None:
    config = cfg(pretrain_epochs=1, pretrain_noise=0.3)
    first = fit(config, digits)
    config.save(tmp_path / "best.toml")
    again = TrainConfig.load(tmp_path / "best.toml")
    assert (again.pretrain_epochs, again.pretrain_noise) == (1, 0.3)
    second = fit(again, digits)
    assert same_weights(first.model, second.model)
    assert losses(first.pretraining) == losses(second.pretraining)


def test_pretraining_changes_the_start_of_fine_tuning(digits: Data) -> None:
    with_it = fit(cfg(epochs=1), digits)
    without = fit(cfg(epochs=1, pretrain_epochs=0), digits)
    assert without.pretraining == []
    assert not torch.equal(with_it.model.fc1.weight, without.model.fc1.weight)


SEQUENTIAL = """
from torch import nn

def build(input_shape, num_classes):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 12), nn.Tanh(), nn.Dropout(0.1), nn.Linear(12, 6),
        nn.ReLU(), nn.Linear(6, num_classes),
    )
"""

CUSTOM = """
from torch import nn

class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.a, self.b = nn.Linear(64, 12), nn.Linear(12, num_classes)

    def forward(self, x):
        return self.b(self.a(x.flatten(1)).relu())

def build(input_shape, num_classes):
    return Net(num_classes)
"""


def test_a_sequential_factory_of_linear_layers_is_pretrained(digits: Data, tmp_path: Path) -> None:
    (tmp_path / "nets.py").write_text(SEQUENTIAL)
    result = fit(cfg(model="nets.py:build", hidden=()), digits, search_path=[tmp_path])
    assert [r.layer for r in result.pretraining] == ["1.weight"] * 2 + ["4.weight"] * 2


def test_a_factory_that_is_not_a_sequential_is_refused_with_the_fix(
    digits: Data, tmp_path: Path
) -> None:
    (tmp_path / "nets.py").write_text(CUSTOM)
    with pytest.raises(ConfigError, match=r"not an nn\.Sequential") as info:
        fit(cfg(model="nets.py:build"), digits, search_path=[tmp_path])
    assert "nets.py:build" in str(info.value)
    assert "pretrain_epochs = 0" in str(info.value)


def test_on_pretrain_sees_every_pretraining_epoch_before_the_first_epoch(digits: Data) -> None:
    seen: list[Any] = []
    config = cfg(epochs=1)
    result = fit(config, digits, on_pretrain=seen.append, on_epoch=seen.append)
    assert seen[:4] == result.pretraining and seen[4:] == result.epochs
    store = MemoryCheckpoint()
    fit(config, digits, checkpoint=store)
    again: list[Any] = []
    fit(config, digits, checkpoint=store, on_pretrain=again.append)  # resumed: restored ones
    assert losses(again) == losses(result.pretraining)


def test_cross_fit_pretrains_each_network_on_its_own_training_rows(tmp_path: Path) -> None:
    config = cfg(folds=2, epochs=2, pretrain_epochs=1)
    digits = load_data(config)
    whole = cross_fit(config, digits)
    n = len(digits.y_train)
    rows = [[(r.layer, r.rows) for r in member.pretraining] for member in whole.members]
    assert rows == [[("fc1.weight", k), ("fc2.weight", k)] for k in (n - n // 2, n // 2)]

    def stop_at_zero(result: EpochResult) -> None:
        raise Stop

    store = FileCheckpoint(str(tmp_path / "folds.pt"))
    with pytest.raises(Stop):
        cross_fit(config, digits, on_epoch=stop_at_zero, checkpoint=store)
    resumed = cross_fit(config, digits, checkpoint=store)
    for a, b in zip(resumed.members, whole.members, strict=True):
        assert losses(a.pretraining) == losses(b.pretraining)
        assert same_weights(a.model, b.model)


def test_cross_fit_hands_on_each_members_pretraining_with_its_index(tmp_path: Path) -> None:
    config = cfg(folds=2, epochs=1, pretrain_epochs=1)
    digits = load_data(config)
    seen: list[PretrainEpoch] = []
    whole = cross_fit(config, digits, on_pretrain=seen.append)
    assert [(r.member, r.layer) for r in seen] == [
        (m, layer) for m in (0, 1) for layer in ("fc1.weight", "fc2.weight")
    ]
    for m, member in enumerate(whole.members):  # the same records, their member named
        assert [dataclasses.replace(r, member=0) for r in seen if r.member == m] == list(
            member.pretraining
        )
    store = FileCheckpoint(str(tmp_path / "folds.pt"))
    cross_fit(config, digits, checkpoint=store)
    again: list[PretrainEpoch] = []
    cross_fit(config, digits, checkpoint=store, on_pretrain=again.append)  # restored ones
    assert [(r.member, *losses([r])[0]) for r in again] == [
        (r.member, *losses([r])[0]) for r in seen
    ]


def test_the_lr_range_test_starts_from_the_pretrained_network(
    digits: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer._lr_range as lr_range

    config = cfg(optimizer="adam", momentum=0.0)
    started: list[torch.nn.Module] = []

    def spy(model: torch.nn.Module, data: Data, config: TrainConfig) -> list[PretrainEpoch]:
        records = pretrain(model, data, config)
        started.append(copy.deepcopy(model))
        return records

    monkeypatch.setattr(lr_range, "pretrain", spy)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    found = lr_range_test(config, digits, steps=20, lr_min=1e-5, lr_max=1e-1)
    assert torch.equal(torch.get_rng_state(), state)
    expected, _ = pretrained(config, digits)  # the weights fit pre-trains to
    assert len(started) == 1 and same_weights(started[0], expected)
    plain = lr_range_test(
        config.replace(pretrain_epochs=0), digits, steps=20, lr_min=1e-5, lr_max=1e-1
    )
    assert found.losses != plain.losses
