"""The user's data loader: a function named by a reference, returning arrays or a Dataset.

A loader takes no arguments (or ``data_dir``, when its signature names it) and returns either

- a mapping, or an object with attributes, holding ``x_train`` and ``y_train`` (and optionally
  ``x_test`` and ``y_test``, and ``x_unlabeled``: inputs without labels, for pre-training)
  as numpy arrays or torch tensors, or
- a map-style `torch.utils.data.Dataset` of ``(x, y)`` items, read once into arrays (training
  data only: hold out a test share with ``test_fraction``).

Shapes are kept as the loader gives them; uint8 inputs are divided by 255 like images.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer._arrays import Arrays
from trainer._errors import BadDataError
from trainer._refs import UserCodeError, UserFunction, load_loader

_SHAPE_HINT = (
    "return a mapping with x_train and y_train (optionally x_test and y_test) as numpy arrays "
    "or tensors, or a map-style torch Dataset of (x, y) items"
)


def read_loader(ref: str, data_dir: str, *, search_path: Sequence[str | Path] = ()) -> Arrays:
    """Calls the loader `ref` and gathers what it returns into `Arrays`.

    Raises:
        UserCodeError: the loader cannot be found, raises, or returns something else.
    """
    loader = load_loader(ref, search_path=search_path)
    arrays = as_arrays(_call(loader, data_dir), source=f"data loader '{ref}'")
    provenance = {f"loader_{key}": value for key, value in loader.identity().items()}
    return dataclasses.replace(arrays, provenance=provenance)


def as_arrays(result: Any, *, source: str) -> Arrays:
    """Gathers what a loader returns (a mapping or object with x_train and y_train, optionally
    x_test and y_test and x_unlabeled, inputs without labels, as arrays or tensors; or a
    map-style Dataset of (x, y) items, read once) into `Arrays`, shapes as given; uint8 inputs
    are divided by 255 like images.

    Args:
        source: how messages name where `result` came from ("data loader 'loaders.py:load'").

    Raises:
        UserCodeError: `result` is none of those.
        BadDataError: an empty dataset, items of different shapes, or only one test array.
    """
    if isinstance(result, torch.utils.data.Dataset) or _is_sequence_of_items(result):
        x_train, y_train = _materialise(result, source)
        x_test = y_test = x_unlabeled = None
    else:
        parts = {name: _get(result, name) for name in ("x_train", "y_train", "x_test", "y_test")}
        if parts["x_train"] is None or parts["y_train"] is None:
            raise UserCodeError(
                f"{source} returned a {type(result).__name__} without x_train and y_train; "
                f"{_SHAPE_HINT}"
            )
        if (parts["x_test"] is None) != (parts["y_test"] is None):
            raise BadDataError(f"{source} must return both x_test and y_test, or neither")
        x_train, y_train = _array(parts["x_train"]), _array(parts["y_train"])
        x_test = None if parts["x_test"] is None else _array(parts["x_test"])
        y_test = None if parts["y_test"] is None else _array(parts["y_test"])
        unlabeled = _get(result, "x_unlabeled")
        x_unlabeled = None if unlabeled is None else _array(unlabeled)
    scale = 255.0 if x_train.dtype == np.uint8 else 1.0
    return Arrays(x_train, y_train, x_test, y_test, scale=scale, x_unlabeled=x_unlabeled)


def _call(loader: UserFunction, data_dir: str) -> Any:
    try:
        takes_dir = "data_dir" in inspect.signature(loader.function).parameters
    except (TypeError, ValueError):  # a callable without a signature
        takes_dir = False
    try:
        return loader.function(data_dir=data_dir) if takes_dir else loader.function()
    except Exception as exc:
        raise UserCodeError(
            f"data loader '{loader.ref}' raised {type(exc).__name__}: {exc}"
        ) from exc


def _get(result: Any, name: str) -> Any:
    if isinstance(result, Mapping):
        return result.get(name)
    return getattr(result, name, None)


def _is_sequence_of_items(result: Any) -> bool:
    """A Dataset-like object that does not subclass Dataset: indexable, sized, not a mapping."""
    return (
        hasattr(result, "__getitem__")
        and hasattr(result, "__len__")
        and not isinstance(result, Mapping | str | bytes | np.ndarray | torch.Tensor)
        and not hasattr(result, "x_train")
    )


def _materialise(dataset: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads every (x, y) item of a map-style dataset once, into two stacked arrays."""
    n = len(dataset)
    if n == 0:
        raise BadDataError(f"{source} returned an empty dataset")
    xs, ys = [], []
    for i in range(n):
        item = dataset[i]
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise UserCodeError(
                f"{source}: item {i} of its dataset is of type {type(item).__name__}, not an "
                f"(x, y) pair; {_SHAPE_HINT}"
            )
        xs.append(_array(item[0]))
        ys.append(_array(item[1]))
    try:
        return np.stack(xs), np.stack(ys)
    except ValueError as exc:
        raise BadDataError(f"{source}: the items of its dataset differ in shape ({exc})") from None


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
