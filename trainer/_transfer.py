"""Transfer learning: a run that starts from stored weights (`init_from`) and holds its lower
layers fixed (`freeze`), for a related task with few labels.

`apply_transfer` does both to a freshly initialised network; `fit` and `lr_range_test` call it
before they build the optimiser. Its guarantees:

- Loading `init_from`: each entry of the file's state dict whose name and shape match the
  network's is copied into it (buffers too: batch-norm statistics travel with their layer).
  The network's other entries keep the init scheme's values: those the file lacks or holds
  in another shape (a new output layer for other classes). The file's entries the network
  lacks are ignored. At least one parameter must load; a file of which none fits is taken to
  belong to another architecture and refused.
- Freezing `freeze = N`: the modules that own the first N weight layers (`weight_layers`,
  input side first), and every module registered before the first weight layer left to train
  (the batch norms between frozen layers, an input norm), are frozen. Their parameters get
  ``requires_grad = False``: they get no gradient, `make_optimizer` leaves them out (no step,
  no weight decay, no momentum), the elastic net skips them, and `fit` reports no gradient
  norm for them. Their batch norms always normalise with their stored statistics (inference
  mode, even under ``model.train()``), so those stay as well. Every state-dict entry of a
  frozen module is therefore bit-identical after training. At least one weight layer must be
  left to train.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer._config import TrainConfig
from trainer._errors import ConfigError, WeightsError
from trainer._models import weight_layers
from trainer._weights import file_sha256, find_weights, listed, load_weights


@dataclasses.dataclass(frozen=True)
class Transfer:
    """How a run's network started: what `init_from` gave it and what `freeze` held fixed.

    Names are state-dict entries, in the network's order (the file's order for `unused`).
    """

    source: str  # absolute path of the init_from file; "" when the run had none
    sha256: str  # hex content hash of that file; "" when none
    loaded: tuple[str, ...]  # entries copied from the file (same name and shape)
    initialised: tuple[str, ...]  # entries the file lacks or holds in another shape: init scheme
    unused: tuple[str, ...]  # the file's entries that the network lacks or holds in another shape
    frozen: tuple[str, ...]  # parameters `freeze` holds fixed, input side first

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Transfer:
        names = ("loaded", "initialised", "unused", "frozen")
        return cls(str(values["source"]), str(values["sha256"]), *(tuple(values[k]) for k in names))


def _plain(value: str | tuple[str, ...]) -> str | list[str]:
    return value if isinstance(value, str) else list(value)


def apply_transfer(
    model: nn.Module,
    config: TrainConfig,
    *,
    search_path: Sequence[str | Path] = (),
    restored: Mapping[str, Any] | None = None,
) -> Transfer | None:
    """Loads `config.init_from` into the initialised `model` and freezes `config.freeze` layers.

    Args:
        model: the network, its init scheme applied.
        config: reads init_from and freeze.
        search_path: folders where a relative `init_from` is looked for before the current one.
        restored: the `Transfer.to_dict()` of a run being resumed: its checkpoint holds the
            weights, so the file is not read again (it may have moved or changed since), and
            this record is returned. Freezing is applied again.

    Returns:
        What was loaded and frozen; None when the config sets neither init_from nor freeze.

    Raises:
        WeightsError: `init_from` is not found, is not a state dict, or none of its
            parameters fits the network.
        ConfigError: `freeze` leaves no weight layer to train.
    """
    if not config.init_from and not config.freeze:
        return None
    frozen = tuple(freeze_lower(model, config.freeze))
    if restored is not None:
        return Transfer.from_dict(restored)
    if not config.init_from:
        everything = tuple(model.state_dict())
        return Transfer("", "", loaded=(), initialised=everything, unused=(), frozen=frozen)
    path = find_weights(config.init_from, search_path)
    loaded, initialised, unused = load_matching(model, load_weights(path), source=str(path))
    return Transfer(str(path), file_sha256(path), loaded, initialised, unused, frozen)


def load_matching(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Copies the entries of `state` whose name and shape match `model`'s into it.

    Args:
        model: the network.
        state: a state dict.
        source: how messages name where `state` came from.

    Returns:
        (loaded, initialised, unused): the network's entries copied, the network's entries
        left as they were, and the entries of `state` not used.

    Raises:
        WeightsError: not one parameter of the network is in `state` with its shape.
    """
    own = model.state_dict()
    take = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not {name for name, _ in model.named_parameters()} & take.keys():
        raise WeightsError(_nothing_fits(own, state, source))
    model.load_state_dict(take, strict=False)
    return (
        tuple(k for k in own if k in take),
        tuple(k for k in own if k not in take),
        tuple(k for k in state if k not in take),
    )


def _nothing_fits(
    own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str
) -> str:
    reshaped = [
        f"{k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the network"
        for k in own
        if k in state
    ]
    why = f"; same names, other shapes: {'; '.join(reshaped[:3])}" if reshaped else ""
    return (
        f"init_from {source}: none of its parameters fits this config's network (is it the "
        f"weights of another architecture?){why}; the network's entries: {listed(list(own))}; "
        f"the file's: {listed(list(state))}"
    )


def freeze_lower(model: nn.Module, count: int) -> list[str]:
    """Freezes the lower `count` weight layers of `model` (see the module's docstring).

    Returns:
        The names of the parameters frozen, input side first.

    Raises:
        ConfigError: no weight layer would be left to train; the message gives `count` and the
            number of weight layers.
    """
    if count == 0:
        return []
    names = [name for name, _ in weight_layers(model)]
    owners = [name.rpartition(".")[0] for name in names]
    first_free = _first_free(owners, count)
    if first_free is None:
        top = max((k for k in range(len(owners)) if _first_free(owners, k) is not None), default=0)
        raise ConfigError(
            [
                f"freeze = {count} leaves no weight layer to train: the network has "
                f"{len(owners)} weight layers ({listed(names)}); freeze at most {top}"
            ]
        )
    frozen = []
    for name, module in model.named_modules():
        if name == first_free:
            break
        for own, parameter in module.named_parameters(recurse=False):
            parameter.requires_grad_(False)
            frozen.append(f"{name}.{own}" if name else own)
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            module.register_forward_pre_hook(_hold_statistics)
    return frozen


def _first_free(owners: Sequence[str], count: int) -> str | None:
    """The module owning the first weight layer after the first `count` that trains."""
    held = set(owners[:count])
    return next((owner for owner in owners[count:] if owner not in held), None)


def _hold_statistics(module: nn.Module, _args: tuple[Any, ...]) -> None:
    """A frozen norm's forward pre-hook: normalise with the stored statistics, never update."""
    module.eval()
