"""Data sets as tensors on the device: MNIST, scikit-learn's digits, and the user's own.

Every data set is read once per process into `Arrays` (numpy), split into train and dev with
a seeded permutation, standardised with the training part's mean and deviation, and moved to
the device as whole tensors; the trainer batches by slicing a permutation of them. The test
split is loaded only when asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from trainer._config import TrainConfig
from trainer._mnist import DataUnavailableError, fetch_mnist

DIGITS_TEST_FRACTION = 0.2  # digits has no official test split; this fixed share is held out
DIGITS_TEST_SEED = 1234  # ... always the same examples, whatever the config's seeds


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, for caches
class Arrays:
    """A data set as read from disk: inputs (N, ...) and integer labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    scale: float  # divide raw inputs by this (255 for 8-bit images, 16 for digits)


@dataclasses.dataclass(frozen=True)
class Data:
    """Tensors ready for training: float inputs (N, C, H, W) or (N, D) and int64 labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_dev: torch.Tensor
    y_dev: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    num_classes: int
    identity: dict[str, str | int]  # name, fingerprint and split sizes, for export provenance

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Data:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_dev=self.x_dev.to(device),
            y_dev=self.y_dev.to(device),
            x_test=move(self.x_test),
            y_test=move(self.y_test),
        )


def _mnist(data_dir: str) -> Arrays:
    from torchvision.datasets import MNIST

    fetch_mnist(data_dir)
    train = MNIST(data_dir, train=True, download=False)
    test = MNIST(data_dir, train=False, download=False)
    return Arrays(
        x_train=train.data.numpy()[:, None],
        y_train=train.targets.numpy(),
        x_test=test.data.numpy()[:, None],
        y_test=test.targets.numpy(),
        scale=255.0,
    )


def _digits(data_dir: str) -> Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None]  # (1797, 1, 8, 8), values 0..16
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(DIGITS_TEST_SEED).permutation(len(y))
    n_test = round(len(y) * DIGITS_TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    return Arrays(x[train], y[train], x[test], y[test], scale=16.0)


DATASETS: dict[str, Callable[[str], Arrays]] = {
    "mnist": _mnist,
    "digits": _digits,
}


def read_arrays(dataset: str, data_dir: str = "data") -> Arrays:
    """Reads a built-in data set by name, an `.npz` file, or an image folder.

    Raises:
        DataUnavailableError: for an unknown name or path, or data that cannot be read.
    """
    path = Path(dataset)
    # A file or folder may change between two fits in one process: its stamp is in the key.
    stamp = path.stat().st_mtime_ns if dataset not in DATASETS and path.exists() else 0
    return _read_cached(dataset, str(data_dir), stamp)


@functools.lru_cache(maxsize=4)
def _read_cached(dataset: str, data_dir: str, stamp: int) -> Arrays:
    if dataset in DATASETS:
        return DATASETS[dataset](data_dir)
    path = Path(dataset)
    if path.suffix == ".npz" and path.is_file():
        return _npz(path)
    if path.is_dir():
        return _image_folder(path)
    raise DataUnavailableError(
        f"dataset '{dataset}' is neither a built-in ({', '.join(DATASETS)}), nor an .npz file, "
        f"nor an image folder"
    )


def load_data(
    config: TrainConfig, *, with_test: bool = False, device: torch.device | str | None = None
) -> Data:
    """The config's data set, split, standardised and on `device` (default: the config's).

    Args:
        config: reads dataset, data_dir, dev_fraction, split_seed and train_size.
        with_test: also load the test split (only `train --test` and reproduce do).
        device: where the tensors go; defaults to `resolve_device(config.device)`.
    """
    arrays = read_arrays(config.dataset, config.data_dir)
    n = len(arrays.y_train)
    order = np.random.default_rng(config.split_seed).permutation(n)
    n_dev = max(1, round(n * config.dev_fraction))
    if n_dev >= n:
        raise DataUnavailableError(
            f"dataset '{config.dataset}' has {n} training examples: too few to hold out "
            f"a dev share of {config.dev_fraction} and still train"
        )
    dev_idx, train_idx = order[:n_dev], order[n_dev:]
    if config.train_size:
        train_idx = train_idx[: config.train_size]
    x_train = arrays.x_train[train_idx].astype(np.float32) / arrays.scale
    mean, std = float(x_train.mean()), float(x_train.std()) or 1.0

    def prepare(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x.astype(np.float32) / arrays.scale - mean) / std)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y.astype(np.int64))

    has_test = with_test and arrays.x_test is not None and arrays.y_test is not None
    data = Data(
        x_train=prepare(arrays.x_train[train_idx]),
        y_train=labels(arrays.y_train[train_idx]),
        x_dev=prepare(arrays.x_train[dev_idx]),
        y_dev=labels(arrays.y_train[dev_idx]),
        x_test=prepare(arrays.x_test) if has_test else None,  # type: ignore[arg-type]
        y_test=labels(arrays.y_test) if has_test else None,  # type: ignore[arg-type]
        num_classes=_num_classes(arrays),
        identity={
            "dataset": config.dataset,
            "fingerprint": fingerprint(arrays),
            "train": len(train_idx),
            "dev": len(dev_idx),
            "test": 0 if arrays.y_test is None else len(arrays.y_test),
            "classes": _num_classes(arrays),
        },
    )
    return data.to(device if device is not None else resolve_device(config.device))


def _num_classes(arrays: Arrays) -> int:
    top = (
        arrays.y_train.max()
        if arrays.y_test is None
        else max(arrays.y_train.max(), arrays.y_test.max())
    )
    return int(top) + 1


def resolve_device(name: str) -> torch.device:
    """'auto' is the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fingerprint(arrays: Arrays) -> str:
    """A short content hash of the training and test arrays: the data set's identity."""
    return _fingerprint_cached(arrays)


@functools.lru_cache(maxsize=8)
def _fingerprint_cached(arrays: Arrays) -> str:
    digest = hashlib.sha256()
    for part in (arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test):
        if part is not None:
            digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()[:16]


def _npz(path: Path) -> Arrays:
    try:
        with np.load(path) as npz:
            files = dict(npz.items())
    except (OSError, ValueError) as exc:
        raise DataUnavailableError(f"cannot read {path}: {exc}") from None
    missing = [k for k in ("x_train", "y_train") if k not in files]
    if missing:
        raise DataUnavailableError(
            f"{path} lacks {', '.join(missing)}; an .npz data set holds x_train and y_train "
            f"(and optionally x_test and y_test)"
        )
    if ("x_test" in files) != ("y_test" in files):
        raise DataUnavailableError(f"{path} must hold both x_test and y_test, or neither")
    x_train, x_test = files["x_train"], files.get("x_test")
    if len(x_train) != len(files["y_train"]):
        raise DataUnavailableError(
            f"{path}: x_train has {len(x_train)} rows but y_train has {len(files['y_train'])}"
        )
    for name in ("y_train", "y_test"):
        if name in files and not _are_labels(files[name]):
            raise DataUnavailableError(
                f"{path}: {name} must hold class numbers 0, 1, 2, ... (whole numbers >= 0)"
            )
    scale = 255.0 if x_train.dtype == np.uint8 else 1.0
    return Arrays(
        x_train=_channels_first(x_train),
        y_train=files["y_train"].astype(np.int64),
        x_test=None if x_test is None else _channels_first(x_test),
        y_test=None if x_test is None else files["y_test"].astype(np.int64),
        scale=scale,
    )


def _are_labels(y: np.ndarray) -> bool:
    if y.ndim != 1 or not (
        np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)
    ):
        return False
    return bool(np.all(y >= 0) and np.all(y == np.round(y)))


def _channels_first(x: np.ndarray) -> np.ndarray:
    """(N, H, W) gains a channel axis; (N, H, W, C) with C in 1..4 becomes (N, C, H, W)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def _image_folder(root: Path) -> Arrays:
    """`root/<class>/*.png` (all training data) or `root/train/<class>/...` plus `root/test/...`."""
    train_root, test_root = root / "train", root / "test"
    if train_root.is_dir():
        classes = sorted(p.name for p in train_root.iterdir() if p.is_dir())
        x_train, y_train = _read_images(train_root, classes)
        x_test, y_test = _read_images(test_root, classes) if test_root.is_dir() else (None, None)
    else:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        x_train, y_train = _read_images(root, classes)
        x_test, y_test = None, None
    return Arrays(x_train, y_train, x_test, y_test, scale=255.0)


def _read_images(root: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    if not classes:
        raise DataUnavailableError(f"{root} holds no class folders (expected {root}/<class>/*.png)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        if not (root / name).is_dir():  # a test folder may lack a class the training set has
            continue
        for file in sorted((root / name).iterdir()):
            if file.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif"):
                continue
            with Image.open(file) as image:
                mode = "L" if image.mode in ("L", "1", "P", "I;16") else "RGB"
                images.append(np.asarray(image.convert(mode)))
            labels.append(label)
    if not images:
        raise DataUnavailableError(f"no images found under {root}")
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise DataUnavailableError(
            f"images under {root} differ in size or mode ({sorted(shapes)[:3]}...); "
            f"resize them to one size first"
        )
    x = np.stack(images)  # (N, H, W) for grey images, (N, H, W, C) for colour ones
    x = x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x, np.asarray(labels, dtype=np.int64)
