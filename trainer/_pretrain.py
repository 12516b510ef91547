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
orders and masks from a generator seeded with `seed`, layer i's decoder from `seed + i`, and
leaves torch's global random state as it found it, so fine-tuning draws its dropout masks as
without pre-training.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainer._config import MODELS, TrainConfig
from trainer._errors import ConfigError
from trainer._records import PretrainEpoch

if TYPE_CHECKING:
    from trainer._data import Data

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
    run = Pretraining(model, data, config)
    while not run.done:
        run.step()
    return run.records


class Pretraining:
    """The pre-training of one network, an epoch of one layer at a time, so that a run can be
    checkpointed (`state`) and resumed (`restored`) in the middle of it.

    Layer i's decoder starts from torch's generator seeded with `seed + i`, and the orders and
    masks of the whole pass come from one generator seeded with `seed`: a resumed pass gives
    the same weights as an uninterrupted one.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Data,
        config: TrainConfig,
        *,
        restored: Mapping[str, Any] | None = None,
    ) -> None:
        """
        Args:
            model: the network: freshly initialised, or, with `restored`, holding the weights
                saved with that state.
            data: reads x_unlabeled and x_train.
            config: reads pretrain_epochs, pretrain_noise, batch_size, seed and model.
            restored: a former `state()`, to go on from.

        Raises:
            ConfigError: the network cannot be pre-trained (see `linear_stack`).
        """
        self.model, self.config = model, config
        stack = linear_stack(model, config.model)
        self.prefix, self.blocks = stack[0], stack[1:-1]
        self.names = [
            f"{name}.weight"
            for block in self.blocks
            for name, module in model.named_modules()
            if module is block[0]
        ]
        parts = [data.x_train] if data.x_unlabeled is None else [data.x_unlabeled, data.x_train]
        self.inputs = torch.cat(parts)
        device = data.x_train.device
        self.devices = [device] if device.type == "cuda" else []
        self.order = torch.Generator(device=device).manual_seed(config.seed)
        self.records: list[PretrainEpoch] = []
        self.layer, self.epoch = 0, 0  # the next epoch to train: blocks[layer], its epoch
        self._h: torch.Tensor | None = None  # blocks[layer]'s clean inputs, once computed
        self._decoder: nn.Linear | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        if restored is not None:
            self._restore(restored)

    @property
    def done(self) -> bool:
        return self.layer >= len(self.blocks) or not self.config.pretrain_epochs

    def step(self) -> PretrainEpoch:
        """Trains the current layer one epoch; moves on to the next layer after its last."""
        config = self.config
        block = self.blocks[self.layer]
        with torch.random.fork_rng(devices=self.devices):  # an activation may draw (RReLU)
            h = self._inputs()
            decoder, optimizer = self._autoencoder()
            started = time.perf_counter()
            perm = torch.randperm(len(h), generator=self.order, device=h.device)
            total = torch.zeros((), device=h.device)
            for begin in range(0, len(h), config.batch_size):
                clean = h.index_select(0, perm[begin : begin + config.batch_size])
                keep = torch.rand(clean.shape, generator=self.order, device=h.device)
                corrupted = clean * (keep >= config.pretrain_noise)
                loss = nn.functional.mse_loss(decoder(_encode(block, corrupted)), clean)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach() * len(clean)
        record = PretrainEpoch(
            self.names[self.layer],
            self.epoch,
            total.item() / len(h),
            len(h),
            time.perf_counter() - started,
        )
        self.records.append(record)
        self.epoch += 1
        if self.epoch == config.pretrain_epochs:  # the layer is done: on to the next
            self.layer, self.epoch = self.layer + 1, 0
            self._h = self._decoder = self._optimizer = None
            for p in self.model.parameters():
                p.grad = None
        return record

    def state(self) -> dict[str, Any]:
        """Where the pass is, without the network's weights (the caller saves those)."""
        return {
            "layer": self.layer,
            "epoch": self.epoch,
            "records": [r.to_dict() for r in self.records],
            "order": self.order.get_state(),
            "decoder": None if self._decoder is None else self._decoder.state_dict(),
            "optimizer": None if self._optimizer is None else self._optimizer.state_dict(),
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.layer, self.epoch = state["layer"], state["epoch"]
        self.records = [PretrainEpoch.from_dict(r) for r in state["records"]]
        self.order.set_state(state["order"])
        if state["decoder"] is not None and not self.done:
            decoder, optimizer = self._autoencoder()
            decoder.load_state_dict(state["decoder"])
            optimizer.load_state_dict(state["optimizer"])

    def _inputs(self) -> torch.Tensor:
        """The current layer's clean inputs: the layers below, already pre-trained, applied."""
        if self._h is None:
            with torch.no_grad():
                h = self.inputs
                for module in self.prefix:  # what comes before the first linear layer
                    h = module(h)
                for block in self.blocks[: self.layer]:
                    h = _encode(block, h)
            self._h = h
        return self._h

    def _autoencoder(self) -> tuple[nn.Linear, torch.optim.Optimizer]:
        """The current layer's decoder and the Adam that trains it with the layer."""
        if self._decoder is None or self._optimizer is None:
            linear = self.blocks[self.layer][0]
            assert isinstance(linear, nn.Linear)
            with torch.random.fork_rng(devices=self.devices):
                torch.manual_seed(self.config.seed + self.layer + 1)
                decoder = nn.Linear(linear.out_features, linear.in_features)
            self._decoder = decoder.to(linear.weight.device)
            params = [*linear.parameters(), *self._decoder.parameters()]
            self._optimizer = torch.optim.Adam(params, lr=PRETRAIN_LR)
        return self._decoder, self._optimizer


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
