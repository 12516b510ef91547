from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import (
    DATASETS,
    DataUnavailableError,
    TrainConfig,
    fit,
    has_mnist,
    load_data,
    read_arrays,
    resolve_device,
)

ROOT = Path(__file__).resolve().parents[2]


def config(dataset: str | Path, **changes: object) -> TrainConfig:
    return TrainConfig(dataset=str(dataset), device="cpu", **changes)  # type: ignore[arg-type]


def write_npz(path: Path, n: int = 40, *, seed: int = 0, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {
        "x_train": rng.integers(0, 256, (n, 5, 4), dtype=np.uint8),
        "y_train": np.arange(n) % 3,
        **extra,
    }
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def write_images(root: Path, classes: dict[str, int], *, size=(4, 5), mode: str = "L") -> None:
    """`count` images per class: pixel (0, 0) holds the class index, (0, 1) the image's;
    in colour, those are in the red plane and the green plane is all 7."""
    width, height = size
    for label, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            plane = np.full((height, width), 100, dtype=np.uint8)
            plane[0, 0], plane[0, 1] = label, i
            if mode == "RGB":
                pixels = np.stack([plane, np.full_like(plane, 7), plane], axis=-1)
            else:
                pixels = plane
            Image.fromarray(pixels).save(root / name / f"{i}.png")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_builtin_dataset_loads(name: str) -> None:
    if name == "mnist" and not has_mnist(ROOT / "data"):
        pytest.skip("MNIST is not in data/ (make run or hpstudy fetch mnist puts it there)")
    data = load_data(config(name, data_dir=str(ROOT / "data"), train_size=100), with_test=True)
    assert data.x_train.shape[0] == 100 and data.x_train.dtype == torch.float32
    assert data.y_train.dtype == torch.int64 and data.num_classes == 10
    assert data.x_test is not None and len(data.x_test) == data.identity["test"]


def test_digits_split_sizes_and_shapes() -> None:
    data = load_data(config("digits", dev_fraction=0.2))
    assert data.input_shape == (1, 8, 8)
    assert data.identity["train"] + data.identity["dev"] == len(data.y_train) + len(data.y_dev)
    assert len(data.y_dev) == round(0.2 * (len(data.y_train) + len(data.y_dev)))
    assert data.identity["test"] == 359
    assert data.x_test is None and data.y_test is None  # the test split waits until asked for


def test_training_inputs_are_standardised() -> None:
    data = load_data(config("digits"))
    assert data.x_train.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert data.x_train.std().item() == pytest.approx(1.0, abs=1e-3)


def test_split_is_seeded() -> None:
    first = load_data(config("digits", split_seed=1))
    again = load_data(config("digits", split_seed=1))
    other = load_data(config("digits", split_seed=2))
    assert torch.equal(first.x_dev, again.x_dev)
    assert not torch.equal(first.x_dev, other.x_dev)


def test_train_size_takes_a_prefix_of_the_same_split() -> None:
    full = load_data(config("digits"))
    small = load_data(config("digits", train_size=50))
    assert len(small.y_train) == small.identity["train"] == 50
    assert torch.equal(small.y_dev, full.y_dev)  # the dev set does not change
    assert torch.equal(small.y_train, full.y_train[:50])


def test_identity_fingerprint_names_the_content(tmp_path: Path) -> None:
    one = load_data(config(write_npz(tmp_path / "a.npz", seed=1)))
    same = load_data(config(write_npz(tmp_path / "b.npz", seed=1)))
    other = load_data(config(write_npz(tmp_path / "c.npz", seed=2)))
    assert one.identity["fingerprint"] == same.identity["fingerprint"]
    assert one.identity["fingerprint"] != other.identity["fingerprint"]
    assert set(one.identity) >= {"dataset", "fingerprint", "train", "dev", "test"}


def test_npz_dataset(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", x_test=np.zeros((6, 5, 4), np.uint8), y_test=np.ones(6))
    data = load_data(config(path), with_test=True)
    assert data.input_shape == (1, 5, 4)
    assert (data.identity["train"], data.identity["dev"], data.identity["test"]) == (36, 4, 6)
    assert data.num_classes == 3
    assert data.y_test is not None and data.y_test.tolist() == [1] * 6


def test_npz_channels_last_images_become_channels_first(tmp_path: Path) -> None:
    x = np.zeros((10, 6, 5, 3), np.float32)
    x[..., 1] = 1.0  # green
    np.savez(tmp_path / "rgb.npz", x_train=x, y_train=np.arange(10) % 2)
    arrays = read_arrays(str(tmp_path / "rgb.npz"))
    assert arrays.x_train.shape == (10, 3, 6, 5)
    assert arrays.x_train[:, 1].min() == 1.0 and arrays.x_train[:, 0].max() == 0.0


def test_npz_flat_features_train_an_mlp(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", x_train=rng.normal(size=(50, 7)), y_train=np.arange(50) % 2)
    result = fit(config(tmp_path / "flat.npz", hidden=(4,), epochs=1))
    assert result.status == "completed"


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((4, 2))}, "lacks y_train"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(3)}, "x_train has 4 rows"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, 1, -1, 0])}, "class numbers"),
        ({"x_train": np.zeros((4, 2)), "y_train": np.array([0, 0.5, 1, 0])}, "class numbers"),
        (
            {"x_train": np.zeros((4, 2)), "y_train": np.zeros(4), "x_test": np.zeros((1, 2))},
            "both x_test and y_test",
        ),
    ],
)
def test_npz_problems_are_explained(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataUnavailableError, match=message):
        read_arrays(str(tmp_path / "bad.npz"))


def test_a_rewritten_file_is_read_again(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", seed=1)
    first = read_arrays(str(path))
    write_npz(path, seed=2)
    os.utime(path, ns=(1, 1))  # a different stamp, even on a coarse-grained clock
    assert not np.array_equal(read_arrays(str(path)).x_train, first.x_train)


def test_image_folder_of_grey_images(tmp_path: Path) -> None:
    write_images(tmp_path, {"cat": 3, "dog": 4}, size=(4, 5))
    arrays = read_arrays(str(tmp_path))
    assert arrays.x_train.shape == (7, 1, 5, 4)  # (N, C, height, width)
    assert arrays.y_train.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert arrays.x_train[:, 0, 0, 1].tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert arrays.x_test is None and arrays.scale == 255.0


def test_image_folder_of_small_colour_images(tmp_path: Path) -> None:
    write_images(tmp_path, {"a": 2, "b": 2}, size=(3, 4), mode="RGB")
    arrays = read_arrays(str(tmp_path))
    assert arrays.x_train.shape == (4, 3, 4, 3)
    assert (arrays.x_train[:, 1] == 7).all()  # the green plane is channel 1
    assert arrays.x_train[:, 0, 0, 0].tolist() == [0, 0, 1, 1]


def test_image_folder_with_train_and_test(tmp_path: Path) -> None:
    write_images(tmp_path / "train", {"a": 10, "b": 10, "c": 10})
    write_images(tmp_path / "test", {"a": 2, "c": 3})  # no "b" in the test set
    data = load_data(config(tmp_path), with_test=True)
    assert data.num_classes == 3
    assert data.y_test is not None and data.y_test.tolist() == [0, 0, 2, 2, 2]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: (root / "empty").mkdir(), "no images found"),
        (lambda root: None, "holds no class folders"),
        (
            lambda root: (
                write_images(root, {"a": 1}, size=(4, 4)),
                write_images(root, {"b": 1}, size=(5, 5)),
            ),
            "differ in size",
        ),
    ],
    ids=["no-images", "no-classes", "mixed-sizes"],
)
def test_image_folder_problems_are_explained(tmp_path: Path, make, message: str) -> None:
    make(tmp_path)
    with pytest.raises(DataUnavailableError, match=message):
        read_arrays(str(tmp_path))


def test_unknown_dataset_lists_the_choices() -> None:
    with pytest.raises(DataUnavailableError, match="mnist, digits"):
        read_arrays("no-such-data")


def test_too_few_examples_for_a_dev_set(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="too few"):
        load_data(config(write_npz(tmp_path / "one.npz", n=1)))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_data_moves_as_a_whole() -> None:
    data = load_data(config("digits"), with_test=True).to("cpu")
    assert data.x_test is not None and data.x_test.device.type == "cpu"
