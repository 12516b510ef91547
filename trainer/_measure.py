"""What a trained network costs where it runs: parameters, bytes, FLOPs and forward latency.

Each is a small function of a model and, where the input matters, an example batch; `measure`
returns them all, keyed as a study records them.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

WARMUP = 3  # untimed forwards first: allocator, caches and lazy kernels settle
REPEATS = 21  # timed forwards; the median is robust to a neighbour's burst of work


def count_params(model: nn.Module) -> int:
    """The trainable parameters (frozen ones do not count: they are not what a study sizes)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_bytes(model: nn.Module) -> int:
    """The bytes of the network's state (weights and buffers, e.g. batch-norm statistics):
    what a saved state dict holds, without the file format's overhead."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def flops_per_example(model: nn.Module, example: torch.Tensor) -> float:
    """Floating-point operations of one example's forward, as `torch.utils.flop_counter`
    counts them (a multiply-add is two), in eval mode.

    Args:
        example: a batch of inputs; the count is divided by its size.
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(example)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / max(1, example.shape[0])


def latency_ms(
    model: nn.Module, batch: torch.Tensor, *, warmup: int = WARMUP, repeats: int = REPEATS
) -> float:
    """The median forward time of `batch` in milliseconds, in eval mode without gradients.

    On the CPU it runs with one torch thread (then restores the count), so the figure does
    not depend on how many cores the worker was given; on a GPU it synchronises around each
    forward.
    """
    device = batch.device
    threads = torch.get_num_threads()
    was_training = model.training
    model.eval()
    times = []
    try:
        if device.type == "cpu":
            torch.set_num_threads(1)
        with torch.no_grad():
            for i in range(warmup + repeats):
                _synchronize(device)
                started = time.perf_counter()
                model(batch)
                _synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)
    return 1000.0 * statistics.median(times)


def measure(model: nn.Module, inputs: torch.Tensor, *, latency_batch: int = 1) -> dict[str, float]:
    """`params`, `model_bytes`, `flops` (per example) and `latency_ms` (the median forward of
    the first `latency_batch` rows of `inputs`, on their device)."""
    batch = inputs[:latency_batch]
    return {
        "params": float(count_params(model)),
        "model_bytes": float(model_bytes(model)),
        "flops": flops_per_example(model, batch),
        "latency_ms": latency_ms(model, batch),
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
