"""Greedy layer-wise pre-training: each hidden layer in turn, as a denoising autoencoder.

`pretrain` runs before the supervised optimiser is built (`Training` calls it on a fresh
network; a resumed run takes its weights from the checkpoint instead). For hidden layer i =
1..L-1 (the output layer is left to fine-tuning):

1. the layers below, already pre-trained and left as they are, map every input (the data's
   unlabelled rows and the training split's) to layer i's clean inputs h;
2. masking noise (the corruption of Vincent et al.'s denoising autoencoder) sets each entry of
   h to 0 with probability `pretrain_noise`;
3. layer i and its activation encode the corrupted h, a throwaway linear decoder maps the code
   back, and Adam (lr `PRETRAIN_LR`, the run's batch size) minimises the mean squared error
   against the clean h for `pretrain_epochs` epochs; the decoder is then dropped.

Batch norm and dropout take no part (they are trained in fine-tuning); a layer's encoder is
its linear map and the parameter-free modules after it (the activation). The pass draws its
orders, masks and decoders from a generator seeded with `seed` and leaves torch's global
random state as it found it, so fine-tuning draws its dropout masks as without pre-training.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn

from trainer._config import MODELS, TrainConfig
from trainer._data import Data
from trainer._errors import ConfigError
from trainer._records import PretrainEpoch

PRETRAIN_LR = 1e-3  # Adam's step for every layer's autoencoder
# modules that keep their place in a pre-trained stack but take no part in pre-training
_PASSIVE = (nn.Dropout, nn.AlphaDropout, nn.modules.batchnorm._NormBase, nn.LayerNorm)


def pretrain(model: nn.Module, data: Data, config: TrainConfig) -> list[PretrainEpoch]:
    """Pre-trains the hidden layers of `model` in place, input side first (see the module).

    Args:
        model: the freshly initialised network, on the data's device.
        data: reads x_unlabeled and x_train.
        config: reads pretrain_epochs, pretrain_noise, batch_size, seed and model.

    Returns:
        One record per layer and epoch, in the order trained.

    Raises:
        ConfigError: the network is not an `nn.Sequential` whose weights are `nn.Linear`
            layers in sequence; the message says how to write one, or to turn pre-training off.
    """
    stack = linear_stack(model, config.model)
    parts = [data.x_train] if data.x_unlabeled is None else [data.x_unlabeled, data.x_train]
    device = data.x_train.device
    order = torch.Generator(device=device).manual_seed(config.seed)
    records: list[PretrainEpoch] = []
    names = {id(module): name for name, module in model.named_modules()}
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(config.seed)  # the decoders' initial weights
        h = torch.cat(parts)
        for module in stack[0]:  # what comes before the first linear layer (a Flatten)
            h = module(h)
        for block in stack[1:-1]:
            with torch.enable_grad():
                records += _train_layer(block, h, config, order, f"{names[id(block[0])]}.weight")
            h = _encode(block, h)
    for p in model.parameters():
        p.grad = None
    return records


def linear_stack(model: nn.Module, name: str = "the network") -> list[list[nn.Module]]:
    """`model`'s modules cut before each `nn.Linear`: [prefix, block 1, ..., output block].

    Raises:
        ConfigError: `model` is not an `nn.Sequential` of `nn.Linear` layers with
            parameter-free modules, dropout and norms between them, or has fewer than two.
    """
    why = None
    if not isinstance(model, nn.Sequential):
        why = f"it is a {type(model).__name__}, not an nn.Sequential"
    else:
        stack: list[list[nn.Module]] = [[]]
        for child_name, child in model.named_children():
            if isinstance(child, nn.Linear):
                stack.append([child])
            elif next(child.parameters(), None) is None or isinstance(child, _PASSIVE):
                stack[-1].append(child)
            else:
                why = f"its module '{child_name}' is a {type(child).__name__}, not nn.Linear"
                break
        if why is None and any(next(m.parameters(), None) is not None for m in stack[0]):
            why = "it has parameters before its first nn.Linear"
        if why is None and len(stack) < 3:
            why = "it has no hidden nn.Linear layer (only an output layer) to pre-train"
        if why is None:
            return stack
    shown = name if name not in MODELS else f"model '{name}'"
    raise ConfigError(
        [
            f"pretrain_epochs: {shown} cannot be pre-trained layer by layer: {why}; a "
            f"factory must return an nn.Sequential of nn.Linear layers with activations "
            f"(dropout and batch norm allowed) between them, e.g. nn.Sequential(nn.Flatten(), "
            f"nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), or set pretrain_epochs = 0"
        ]
    )


def _encode(block: Sequence[nn.Module], h: torch.Tensor) -> torch.Tensor:
    """The block's linear layer and the activations after it; dropout and norms skipped."""
    for module in block:
        if not isinstance(module, _PASSIVE):
            h = module(h)
    return h


def _train_layer(
    block: Sequence[nn.Module],
    h: torch.Tensor,
    config: TrainConfig,
    order: torch.Generator,
    name: str,
) -> list[PretrainEpoch]:
    """Trains the block's linear layer as the encoder of a denoising autoencoder of `h`."""
    linear = block[0]
    assert isinstance(linear, nn.Linear)
    decoder = nn.Linear(linear.out_features, linear.in_features).to(h.device)
    optimizer = torch.optim.Adam([*linear.parameters(), *decoder.parameters()], lr=PRETRAIN_LR)
    n, size, records = len(h), config.batch_size, []
    for epoch in range(config.pretrain_epochs):
        started = time.perf_counter()
        perm = torch.randperm(n, generator=order, device=h.device)
        total = torch.zeros((), device=h.device)
        for begin in range(0, n, size):
            clean = h.index_select(0, perm[begin : begin + size])
            keep = (
                torch.rand(clean.shape, generator=order, device=h.device) >= config.pretrain_noise
            )
            loss = nn.functional.mse_loss(decoder(_encode(block, clean * keep)), clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(clean)
        seconds = time.perf_counter() - started
        records.append(PretrainEpoch(name, epoch, total.item() / n, n, seconds))
    return records
