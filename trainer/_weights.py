"""Stored weights: state-dict files written and read back checked, and scored without training.

A weights file holds one state dict, a mapping of entry names to tensors, as
``torch.save(model.state_dict(), path)`` writes it (`save_weights` does so with the tensors on
the CPU). `load_weights` reads it without running any pickled code (``weights_only=True``).
`load_model` and `evaluate_state` load one *strictly* into a config's network: every entry of
the network must be in the file with its shape, and the file must hold nothing else.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from trainer._config import TrainConfig, is_study_reference
from trainer._data import Data, resolve_device
from trainer._errors import WeightsError
from trainer._evaluate import Evaluation, evaluate
from trainer._models import model_for
from trainer._refs import resolve_data_path

StateDict = dict[str, torch.Tensor]
Weights = str | Path | Mapping[str, torch.Tensor]  # a state-dict file, or the state dict itself
SHOWN = 5  # entries named in a message before "..."


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Writes `model`'s state dict, its tensors copied to the CPU, to `path` (atomically)."""
    state = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    part = Path(f"{path}.part")
    torch.save(state, part)
    os.replace(part, path)


def load_weights(path: str | Path) -> StateDict:
    """The state dict in `path`, on the CPU.

    Raises:
        WeightsError: no such file, a file torch cannot read without running pickled code
            (a random file, a whole pickled model), or a file that holds something other than
            a mapping of names to tensors (a training checkpoint, say; the message names the
            keys that hold state dicts, if any).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no such weights file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise WeightsError(
            f"{path} is not a state-dict file torch can read ({type(exc).__name__}: {first}); "
            f"write one with save_weights(model, path) or torch.save(model.state_dict(), path)"
        ) from None
    _check_state(state, path)
    return dict(state)


def _check_state(state: object, path: Path) -> None:
    if _is_state_dict(state):
        return
    if not isinstance(state, Mapping):
        raise WeightsError(
            f"{path} holds a {type(state).__name__}, not a state dict (a mapping of names to "
            f"tensors); write one with save_weights(model, path)"
        )
    if not state:
        raise WeightsError(f"{path} holds an empty mapping, not a network's state dict")
    inner = [str(key) for key, value in state.items() if _is_state_dict(value)]
    hint = f"; its weights may be under {', '.join(repr(k) for k in inner)}" if inner else ""
    raise WeightsError(
        f"{path} is not a state dict but another kind of dict (keys: "
        f"{listed([str(k) for k in state])}), such as a training checkpoint{hint}; save the "
        f"network's weights alone with save_weights(model, path)"
    )


def _is_state_dict(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def find_weights(path: str, search_path: Sequence[str | Path] = ()) -> Path:
    """The absolute path of a weights file: a relative one is looked for in each folder of
    `search_path`, then in the current folder (as data files are).

    Raises:
        WeightsError: the file is in none of them.
    """
    if is_study_reference(path):
        raise WeightsError(
            f"init_from {path} names a study's kept weights: run it through hpstudy (a study, "
            f"hpstudy train or reproduce), which fetches them into a file first"
        )
    found = Path(resolve_data_path(path, search_path)).expanduser()
    if found.is_file():
        return found.resolve()
    looked = [str(Path(folder).resolve()) for folder in search_path] + [os.getcwd()]
    where = found if found.is_absolute() else f"{path} (looked in {', '.join(looked)})"
    raise WeightsError(f"no such weights file: {where}")


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of a file's content: a weights file's identity."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Copies `state` into `model`; every entry must match by name and shape, both ways.

    Args:
        model: the network.
        state: a state dict.
        source: how messages name where `state` came from (a file's path).

    Raises:
        WeightsError: naming `source`, how many entries do not fit, and the first few: each
            shape mismatch with both shapes, then the entries missing from `state`, then those
            the network lacks.
    """
    own = model.state_dict()
    label = Path(source).name
    problems = [
        f"{name}: {_shape(state[name])} in {label}, {_shape(own[name])} in this config's network"
        for name in own
        if name in state and state[name].shape != own[name].shape
    ]
    problems += [f"{name}: missing from {label}" for name in own if name not in state]
    problems += [f"{name}: not in this config's network" for name in state if name not in own]
    if problems:
        more = f"; ... ({len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise WeightsError(
            f"the weights in {source} do not fit this config's network: {len(problems)} "
            f"entries differ: {'; '.join(problems[:SHOWN])}{more}"
        )
    model.load_state_dict(state)


def load_model(
    config: TrainConfig,
    data: Data,
    weights: Weights,
    *,
    search_path: Sequence[str | Path] = (),
) -> nn.Module:
    """The config's network for `data`, on the config's device, holding `weights` exactly.

    `init_from` and `freeze` play no part: the weights replace every entry. Building the
    network leaves torch's global random state as it was. A config of several networks
    (`folds` or `repeats` > 1) builds their `Ensemble`, and `weights` must hold all of it.

    Args:
        config: the network (model, its settings) and the device.
        data: the data the network is built for (input shape, number of outputs).
        weights: a state-dict file (relative paths are found as `init_from` is) or a state dict.
        search_path: folders where a relative weights file, or a factory, is looked for.

    Raises:
        WeightsError: the file cannot be read as a state dict, or the weights do not fit the
            network (see `load_strict`).
        UserCodeError: a factory model that cannot be built or does not fit the data.
    """
    if isinstance(weights, Mapping):
        state, source = dict(weights), "the given state dict"
    else:
        path = find_weights(str(weights), search_path)
        state, source = load_weights(path), str(path)
    data = data.to(resolve_device(config.device))
    with torch.random.fork_rng(devices=[]):  # the initial draw is overwritten anyway
        if config.folds * config.repeats > 1:  # a kept ensemble: every member and scaling
            from trainer._ensemble import empty_ensemble

            model: nn.Module = empty_ensemble(config, data, search_path=search_path)
        else:
            model, _ = model_for(config, data, search_path=search_path)
    load_strict(model, state, source=source)
    return model.eval()


def evaluate_state(
    config: TrainConfig,
    data: Data,
    weights: Weights,
    *,
    split: str = "dev",
    search_path: Sequence[str | Path] = (),
) -> Evaluation:
    """Scores stored weights on one split of `data`, without training.

    Args:
        config: the network the weights belong to (see `load_model`).
        data: the data; for split "test", loaded with `with_test=True`.
        weights: a state-dict file or a state dict.
        split: "train", "dev" or "test".
        search_path: folders where a relative weights file, or a factory, is looked for.

    Returns:
        The scores `evaluate` gives for the network holding `weights`.

    Raises:
        WeightsError: see `load_model`.
        ValueError: an unknown split, or a test split that `data` does not hold.
    """
    data = data.to(resolve_device(config.device))
    x, y = _split(data, split)
    model = load_model(config, data, weights, search_path=search_path)
    return evaluate(model, x, y, task=data.task, target_std=data.target_std)


def _split(data: Data, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split == "train":
        return data.x_train, data.y_train
    if split == "dev":
        return data.x_dev, data.y_dev
    if split != "test":
        raise ValueError(f"split must be 'train', 'dev' or 'test', got '{split}'")
    if data.x_test is None or data.y_test is None:
        raise ValueError(
            "the data holds no test split; load it with load_data(..., with_test=True)"
        )
    return data.x_test, data.y_test


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape))


def listed(names: Sequence[str]) -> str:
    """The first few names, and how many there are in all."""
    shown = ", ".join(names[:SHOWN])
    return shown if len(names) <= SHOWN else f"{shown}, ... ({len(names)} in all)"
