"""Data sets as tensors on the device: MNIST, digits, the user's files and loaders.

Every data set is read once per process into `Arrays` (numpy) and checked (numbers only, no
NaN or infinite values, one label per example, class numbers for classification). A seeded
permutation splits it into train and dev (after a fixed-seed test share when `test_fraction`
asks for one), the inputs are standardised with statistics of the training split only, and the
tensors go to the device whole; the trainer batches by slicing a permutation of them. The test
split is loaded only when asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer._arrays import Arrays
from trainer._checks import (
    check_finite,
    check_labels,
    check_lengths,
    check_numeric,
    check_targets,
)
from trainer._config import TrainConfig
from trainer._csv import read_csv
from trainer._errors import BadDataError
from trainer._loaders import read_loader
from trainer._mnist import DataUnavailableError, fetch_mnist
from trainer._refs import load_loader, parse_reference, resolve_data_path
from trainer._standardize import apply_x, apply_y, check_stats, fit_stats

DIGITS_TEST_FRACTION = 0.2  # digits has no official test split; this fixed share is held out
DIGITS_TEST_SEED = 1234  # ... always the same examples, whatever the config's seeds
# `test_fraction` holds out its share with this fixed seed, not split_seed: trials that vary
# split_seed still never train or select on a test example.
TEST_SEED = 1234

SearchPath = Sequence[str | Path]


@dataclasses.dataclass(frozen=True)
class Data:
    """Tensors ready for training: float inputs (N, C, H, W) or (N, D), and targets.

    Targets are int64 class numbers (N,) for classification and float32 (N, k) for regression.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_dev: torch.Tensor
    y_dev: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    num_classes: int  # outputs of the network: classes, or target columns for regression
    identity: dict[str, Any]  # name, fingerprint, split sizes, task, ...: export provenance
    task: str = "classification"
    # the statistics the inputs (and regression targets) were standardised with, JSON-ready;
    # `load_data(..., standardization=...)` applies them again
    standardization: dict[str, Any] | None = None
    # inputs without labels, standardised like x_train: the data's `x_unlabeled` and the
    # training rows `labels` took the labels from; only pre-training reads them
    x_unlabeled: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def outputs(self) -> int:
        """The network's output width: `num_classes` under a name that fits regression too."""
        return self.num_classes

    @property
    def target_std(self) -> list[float] | None:
        """Regression: the deviation of each target column the targets were divided by."""
        stats = self.standardization or {}
        return stats.get("y_std") if self.task == "regression" else None

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
            x_unlabeled=move(self.x_unlabeled),
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


def read_arrays(
    dataset: str,
    data_dir: str = "data",
    *,
    task: str = "classification",
    target: Sequence[str] = (),
    search_path: SearchPath = (),
) -> Arrays:
    """Reads and checks a built-in data set, an `.npz` or `.csv` file, an image folder, or
    what a loader function ("package.module:load", "loaders.py:load") returns.

    Args:
        dataset: as `TrainConfig.dataset`.
        data_dir: where built-in data sets are kept.
        task: "classification" (targets must be class numbers) or "regression".
        target: the label columns of a CSV file.
        search_path: folders where a loader's file or module is looked for.

    Raises:
        DataUnavailableError: for an unknown name or path, or data that cannot be read.
        BadDataError: data that cannot be trained on (NaN, non-numeric, bad labels, ...).
        UserCodeError: a loader that cannot be found, raises, or returns something else.
    """
    dataset = resolve_data_path(dataset, search_path)
    path = Path(dataset)
    # A file (or a loader's source) may change between two fits in one process: its stamp
    # (or content hash) is in the key.
    if dataset not in DATASETS and parse_reference(dataset) is not None:
        stamp: object = load_loader(dataset, search_path=search_path).sha256
    else:
        stamp = path.stat().st_mtime_ns if dataset not in DATASETS and path.exists() else 0
    folders = tuple(str(p) for p in search_path)
    return _read_cached(dataset, str(data_dir), stamp, task, tuple(target), folders)


@functools.lru_cache(maxsize=4)
def _read_cached(
    dataset: str,
    data_dir: str,
    stamp: object,
    task: str,
    target: tuple[str, ...],
    search_path: tuple[str, ...],
) -> Arrays:
    arrays = _read(dataset, data_dir, task, target, search_path)
    is_loader = dataset not in DATASETS and parse_reference(dataset) is not None
    return check_arrays(arrays, f"data loader '{dataset}'" if is_loader else dataset, task)


def _read(
    dataset: str, data_dir: str, task: str, target: tuple[str, ...], search_path: SearchPath
) -> Arrays:
    if dataset in DATASETS:
        return DATASETS[dataset](data_dir)
    path = Path(dataset)
    if path.suffix == ".npz" and path.is_file():
        return _npz(path)
    if path.suffix.lower() == ".csv" and path.is_file():
        return read_csv(path, target, task=task)
    if path.is_dir():
        return _image_folder(path)
    if parse_reference(dataset) is not None:
        return read_loader(dataset, data_dir, search_path=search_path)
    raise DataUnavailableError(
        f"dataset '{dataset}' is neither a built-in ({', '.join(DATASETS)}), nor an .npz or "
        f".csv file, nor an image folder, nor a loader function ('loaders.py:load')"
    )


def check_arrays(arrays: Arrays, source: str, task: str) -> Arrays:
    """`arrays` after every check, with targets typed for `task`: int64 class numbers (N,)
    for classification, float64 (N, k) for regression.

    Raises:
        BadDataError: naming `source`, the array and the first bad row: non-numeric values,
            NaN or infinite values, lengths that differ, labels that are not class numbers.
    """
    splits = [("x_train", "y_train", arrays.x_train, arrays.y_train)]
    if arrays.x_test is not None and arrays.y_test is not None:
        splits.append(("x_test", "y_test", arrays.x_test, arrays.y_test))
    ys: list[np.ndarray] = []
    for x_name, y_name, x, y in splits:
        for name, values in ((x_name, x), (y_name, y)):
            check_numeric(source, name, values)
            check_finite(source, name, values)
        check_lengths(source, x_name, x, y_name, y)
        if task == "classification":
            flat = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y  # a CSV's one column
            check_labels(source, y_name, flat)
            ys.append(flat.astype(np.int64))
        else:
            check_targets(source, y_name, y)
            ys.append(y.reshape(len(y), -1).astype(np.float64))
    y_test = ys[1] if len(ys) > 1 else None
    if arrays.x_unlabeled is not None:
        check_numeric(source, "x_unlabeled", arrays.x_unlabeled)
        check_finite(source, "x_unlabeled", arrays.x_unlabeled)
        if arrays.x_unlabeled.shape[1:] != arrays.x_train.shape[1:]:
            raise BadDataError(
                f"{source}: x_unlabeled's rows have shape {arrays.x_unlabeled.shape[1:]}, "
                f"x_train's {arrays.x_train.shape[1:]}; unlabelled inputs must be shaped like "
                f"the training inputs"
            )
    return dataclasses.replace(arrays, y_train=ys[0], y_test=y_test)


def load_data(
    config: TrainConfig,
    *,
    with_test: bool = False,
    device: torch.device | str | None = None,
    standardization: dict[str, Any] | None = None,
    search_path: SearchPath = (),
) -> Data:
    """The config's data set, split, standardised and on `device` (default: the config's).

    Args:
        config: reads dataset, data_dir, task, target, test_fraction, dev_fraction,
            split_seed, train_size, labels and standardize.
        with_test: also load the test split (only `train --test` and reproduce do).
        device: where the tensors go; defaults to `resolve_device(config.device)`.
        standardization: statistics a former `Data.standardization` holds; applied as they
            are instead of being computed from this training split, so an exported run is
            reproduced on exactly the same inputs.
        search_path: folders where a loader's file or module is looked for.

    Raises:
        DataUnavailableError: the data cannot be found or read, or is too small to split.
        BadDataError: the data cannot be trained on (see `read_arrays`).
    """
    arrays = read_arrays(
        config.dataset,
        config.data_dir,
        task=config.task,
        target=config.target,
        search_path=search_path,
    )
    pool, test_idx = _hold_out_test(arrays, config)
    train_idx, dev_idx = _split(pool, config)
    # the input statistics are those of the whole training split, before `labels` unlabels
    # some of it: inputs are no labels, and a few rows would give noisy statistics
    inputs_idx = train_idx
    train_idx, unlabeled_idx = _keep_labels(arrays, train_idx, config)
    regression = config.task == "regression"
    if standardization is None:
        y_fit = arrays.y_train[train_idx] if regression and config.standardize else None
        stats = fit_stats(
            _scaled(arrays, arrays.x_train[inputs_idx]), y_fit, per_feature=config.standardize
        )
    else:
        check_stats(standardization, per_feature=config.standardize, regression=regression)
        stats = standardization

    def inputs(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(apply_x(stats, _scaled(arrays, x)))

    def targets(y: np.ndarray) -> torch.Tensor:
        if regression:
            return torch.from_numpy(apply_y(stats, y))
        return torch.from_numpy(y.astype(np.int64))

    x_test, y_test = _test_arrays(arrays, test_idx)
    take_test = with_test and x_test is not None and y_test is not None
    y_train = targets(arrays.y_train[train_idx])
    unlabeled = [arrays.x_train[unlabeled_idx]] if len(unlabeled_idx) else []
    if arrays.x_unlabeled is not None:
        unlabeled.insert(0, arrays.x_unlabeled)
    data = Data(
        x_train=inputs(arrays.x_train[train_idx]),
        y_train=y_train,
        x_dev=inputs(arrays.x_train[dev_idx]),
        y_dev=targets(arrays.y_train[dev_idx]),
        x_test=inputs(x_test) if take_test else None,  # type: ignore[arg-type]
        y_test=targets(y_test) if take_test else None,  # type: ignore[arg-type]
        num_classes=_outputs(arrays, config.task),
        identity=_identity(
            config, arrays, train_idx, dev_idx, y_test, y_train, unlabeled=sum(map(len, unlabeled))
        ),
        task=config.task,
        standardization=stats,
        x_unlabeled=inputs(np.concatenate(unlabeled)) if unlabeled else None,
    )
    return data.to(device if device is not None else resolve_device(config.device))


def _scaled(arrays: Arrays, x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / arrays.scale


def _hold_out_test(arrays: Arrays, config: TrainConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows left for train and dev, and those `test_fraction` holds out (fixed seed)."""
    n = len(arrays.y_train)
    if not config.test_fraction:
        return np.arange(n), None
    if arrays.y_test is not None:
        raise DataUnavailableError(
            f"dataset '{config.dataset}' has its own test split; leave test_fraction at 0"
        )
    order = np.random.default_rng(TEST_SEED).permutation(n)
    n_test = max(1, round(n * config.test_fraction))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _split(pool: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, dev) rows: a `split_seed` permutation of `pool`; train cut to `train_size`.

    With `folds` > 1 (the folds are cut from the training rows later, by `cross_fit`) or
    `dev_fraction` = 0 there is no dev split: every row of the pool trains.
    """
    n = len(pool)
    order = pool[np.random.default_rng(config.split_seed).permutation(n)]
    whole = config.folds > 1 or config.dev_fraction == 0.0
    n_dev = 0 if whole else max(1, round(n * config.dev_fraction))
    if n_dev >= n:
        raise DataUnavailableError(
            f"dataset '{config.dataset}' has {n} training examples: too few to hold out "
            f"a dev share of {config.dev_fraction} and still train"
        )
    dev_idx, train_idx = order[:n_dev], order[n_dev:]
    if config.train_size:
        train_idx = train_idx[: config.train_size]
    return train_idx, dev_idx


def _keep_labels(
    arrays: Arrays, train_idx: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, unlabelled) training rows: `labels` rows, stratified, keep their labels.

    Each class keeps about its share of the `labels` rows (at least one; largest remainders
    first), drawn with `split_seed`, so every trial of a study sees the same labelled rows.

    Raises:
        DataUnavailableError: `labels` asks for as many rows as the split has, or fewer than
            it has classes.
    """
    none = np.empty(0, dtype=train_idx.dtype)
    if not config.labels:
        return train_idx, none
    y = arrays.y_train[train_idx]
    classes, counts = np.unique(y, return_counts=True)
    if not len(classes) <= config.labels < len(train_idx):
        raise DataUnavailableError(
            f"labels = {config.labels}: the training split has {len(train_idx)} rows of "
            f"{len(classes)} classes; keep between {len(classes)} and {len(train_idx) - 1} "
            f"labelled rows, or set labels = 0 for all"
        )
    share = counts * (config.labels - len(classes)) / counts.sum()
    quota = 1 + np.floor(share).astype(int)
    short = config.labels - quota.sum()
    quota[np.argsort(-(share - np.floor(share)), kind="stable")[:short]] += 1
    rng = np.random.default_rng(config.split_seed)
    keep = np.zeros(len(train_idx), dtype=bool)
    for c, k in zip(classes, np.minimum(quota, counts), strict=True):
        rows = np.flatnonzero(y == c)
        keep[rng.permutation(rows)[:k]] = True
    return train_idx[keep], train_idx[~keep]


def _test_arrays(
    arrays: Arrays, test_idx: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if test_idx is not None:
        return arrays.x_train[test_idx], arrays.y_train[test_idx]
    return arrays.x_test, arrays.y_test


def _identity(
    config: TrainConfig,
    arrays: Arrays,
    train_idx: np.ndarray,
    dev_idx: np.ndarray,
    y_test: np.ndarray | None,
    y_train: torch.Tensor,
    *,
    unlabeled: int = 0,
) -> dict[str, Any]:
    """Provenance for an export: what data, which split, and what a task's baseline is."""
    identity: dict[str, Any] = {
        "dataset": config.dataset,
        "fingerprint": fingerprint(arrays),
        "train": len(train_idx),
        "dev": len(dev_idx),
        "test": 0 if y_test is None else len(y_test),
        "task": config.task,
        "outputs": _outputs(arrays, config.task),
    }
    if unlabeled:
        identity["unlabeled"] = unlabeled
    if config.task == "classification":
        identity["classes"] = identity["outputs"]
    else:
        # What predicting the training mean scores, in the units of the loss (MSE).
        identity["target_variance"] = float(y_train.double().var(dim=0, unbiased=False).mean())
    return {**identity, **arrays.provenance}


def _outputs(arrays: Arrays, task: str) -> int:
    if task == "regression":
        return int(arrays.y_train.shape[1])
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
    # x_unlabeled last, and only when there: a data set without it keeps its fingerprint
    for part in (arrays.x_train, arrays.y_train, arrays.x_test, arrays.y_test, arrays.x_unlabeled):
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
            f"(and optionally x_test and y_test, and x_unlabeled: inputs without labels)"
        )
    if ("x_test" in files) != ("y_test" in files):
        raise DataUnavailableError(f"{path} must hold both x_test and y_test, or neither")
    x_train, x_test = files["x_train"], files.get("x_test")
    x_unlabeled = files.get("x_unlabeled")
    scale = 255.0 if x_train.dtype == np.uint8 else 1.0
    return Arrays(
        x_train=_channels_first(x_train),
        y_train=files["y_train"],
        x_test=None if x_test is None else _channels_first(x_test),
        y_test=None if x_test is None else files["y_test"],
        scale=scale,
        x_unlabeled=None if x_unlabeled is None else _channels_first(x_unlabeled),
    )


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
