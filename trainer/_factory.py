"""Networks from the user's factory: called with what it names, checked on one small batch.

A factory is any callable (a function or an `nn.Module` class) named by a reference such as
``"models.py:build"``. It is called with keyword arguments only:

- ``input_shape`` (one example's shape, without the batch dimension) and ``num_classes`` (the
  number of outputs: classes, or target columns for regression), where it names them (the
  output is checked against the task either way);
- the config's ``dropout``, ``batch_norm`` and ``activation``, where its signature names them
  (or takes ``**kwargs``); a value set away from its default for a factory that cannot take
  it is an error rather than a silently ignored setting;
- every ``model_args`` entry.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer._config import TrainConfig
from trainer._refs import UserCodeError, UserFunction, load_factory

_OPTIONAL = ("dropout", "batch_norm", "activation")
CHECK_BATCH = 4  # examples in the forward pass that checks a model's output


def build_factory_model(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    search_path: Sequence[str | Path] = (),
) -> nn.Module:
    """Calls the factory `config.model` names; the init scheme is applied by the caller.

    Raises:
        UserCodeError: the factory cannot be loaded, does not take the arguments it would be
            given, raises, or returns something that is not an `nn.Module`.
    """
    factory = load_factory(config.model, search_path=search_path)
    kwargs = factory_arguments(factory, config, input_shape, num_classes)
    try:
        model = factory.function(**kwargs)
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise UserCodeError(
            f"model factory '{factory.ref}' raised {type(exc).__name__}: {exc} (called with "
            f"{shown})"
        ) from exc
    if not isinstance(model, nn.Module):
        raise UserCodeError(
            f"model factory '{factory.ref}' returned a {type(model).__name__}, not a "
            f"torch.nn.Module; return the network itself"
        )
    return model


def factory_arguments(
    factory: UserFunction, config: TrainConfig, input_shape: tuple[int, ...], num_classes: int
) -> dict[str, Any]:
    """The keyword arguments `factory` is called with (see the module's docstring).

    Raises:
        UserCodeError: an argument the factory cannot take, or one it needs and is not given.
    """
    given: dict[str, Any] = {"input_shape": input_shape, "num_classes": num_classes}
    try:
        parameters = inspect.signature(factory.function).parameters
    except (TypeError, ValueError):  # no signature to read: pass what there is
        return {**given, **{name: getattr(config, name) for name in _OPTIONAL}, **config.model_args}
    names = [
        p.name
        for p in parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    open_ended = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    listed = ", ".join(names) or "none"

    def refuse(what: str) -> UserCodeError:
        return UserCodeError(f"model factory '{factory.ref}' {what} (its parameters: {listed})")

    # input_shape and num_classes go to a factory that names them: a network written for
    # one data set may hard-code both.
    given = {name: value for name, value in given.items() if name in names or open_ended}
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name in _OPTIONAL:
        value = getattr(config, name)
        if name in names or open_ended:
            given[name] = value
        elif value != defaults[name]:
            raise refuse(
                f"has no '{name}' parameter, but the config sets {name} = {value!r}; add the "
                f"parameter or leave {name} at {defaults[name]!r}"
            )
    for key in config.model_args:
        if key not in names and not open_ended:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise refuse(f"does not take model_args.{key}{hint}")
    given.update(config.model_args)
    needed = [
        p.name
        for p in parameters.values()
        if p.name in names and p.default is inspect.Parameter.empty and p.name not in given
    ]
    if needed:
        raise refuse(f"needs {', '.join(needed)}; set model_args.{needed[0]}")
    return given


def check_output(model: nn.Module, x: torch.Tensor, *, task: str, outputs: int, name: str) -> None:
    """Runs `model` once on a few examples (eval mode, no gradients, RNG untouched).

    Raises:
        UserCodeError: the forward pass raises, or its output does not fit the task:
            (N, outputs) logits for classification; (N, outputs), or (N,) for one output,
            for regression.
    """
    batch = x[:CHECK_BATCH]
    shape = tuple(batch.shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = model(batch)
    except Exception as exc:
        raise UserCodeError(
            f"model '{name}' failed on a batch of inputs of shape {shape}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        model.train(was_training)
    fits = [(len(batch), outputs)] + (
        [(len(batch),)] if task == "regression" and outputs == 1 else []
    )
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else None
    if got not in fits:
        what = f"a {type(out).__name__}" if got is None else f"outputs of shape {got}"
        need = (
            f"({len(batch)}, {outputs}): one logit per class"
            if task == "classification"
            else f"({len(batch)}, {outputs}): one value per target column"
        )
        raise UserCodeError(
            f"model '{name}' gives {what} for inputs of shape {shape}, but {task} with "
            f"{outputs} outputs needs {need}; its last layer must have {outputs} outputs"
        )
