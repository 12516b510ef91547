"""How close `trainer.fit` comes to its floor: the same epoch's matrix products alone.

For each built-in network (`mnist-mlp`'s MLP 784-300-100-10; `mnist-cnn`'s CNN, two 3x3 conv
blocks of 32 and 64 channels with 2x2 max pooling and a dense head of 128), each batch size
and each thread count, one run alternates a `fit` epoch (training and the dev pass, as
`EpochResult.seconds` times it) with the floor of that epoch, and reports the ratio of their
medians. The floor is the products autograd cannot avoid, on tensors of the same shapes,
with nothing between them:

- per training batch and layer: the forward product, the weight-gradient product and the
  input-gradient product (not for the first layer: the inputs need no gradient); for a conv
  layer the convolution and its backward (`aten::convolution_backward`, channels-last as
  `fit` runs it);
- the dev pass: each layer's forward product in batches of `EVAL_BATCH`.

A ratio of 1.0 would be a trainer whose activations, loss, optimiser step, batch slicing,
bookkeeping and Python cost nothing. The profile (torch's profiler, one `fit` epoch, one
thread) shows where the rest goes, as shares of the epoch's self CPU time per operation.

Run from the repository root (`--record` writes benchmarks/RESULTS.md):

    .venv/bin/python -m benchmarks.trainer_floor --record
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainer import Data, TrainConfig, fit, load_data
from trainer._evaluate import EVAL_BATCH
from trainer._models import build_model

if __package__ in (None, ""):  # run as a file: the repository root holds `benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._results import shown_command, write_section

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## The trainer at its floor (issue 30)"

# The built-in studies' networks and optimisers (studies/spec/specs/mnist-*.toml); the MLP
# with `configs/mnist-mlp.toml`'s SGD, the CNN with its study's Adam.
NETWORKS: dict[str, dict[str, object]] = {
    "mlp": dict(model="mlp", hidden=(300, 100), optimizer="sgd", lr=0.05, momentum=0.9),
    "cnn": dict(model="cnn", channels=(32, 64), hidden=(128,), optimizer="adam", lr=1e-3),
}
# Ops that are the floor's own work (the products) in the profile; the rest is overhead.
PRODUCTS = ("aten::mm", "aten::addmm", "aten::mkldnn_convolution", "aten::convolution_backward")


@dataclasses.dataclass(frozen=True)
class Pair:
    """One case's interleaved epochs: `fit`'s and its floor's, in CPU and wall seconds."""

    network: str
    batch: int
    threads: int
    fit: list[float]  # CPU seconds of the process
    floor: list[float]
    fit_wall: list[float]
    floor_wall: list[float]

    @property
    def ratio(self) -> float:
        """The ratio of the median CPU times (other jobs on the machine disturb it less)."""
        return statistics.median(self.fit) / statistics.median(self.floor)

    @property
    def wall_ratio(self) -> float:
        return statistics.median(self.fit_wall) / statistics.median(self.floor_wall)


def config_for(network: str, batch: int, epochs: int, data_dir: str = "data") -> TrainConfig:
    return TrainConfig(
        dataset="mnist",
        data_dir=data_dir,
        batch_size=batch,
        epochs=epochs,
        device="cpu",
        **NETWORKS[network],  # type: ignore[arg-type]
    )


def subset(data: Data, share: float) -> Data:
    """The first `share` of the training and dev rows (an epoch that takes less time)."""
    if share >= 1.0:
        return data
    n, m = round(len(data.y_train) * share), round(len(data.y_dev) * share)
    return dataclasses.replace(
        data, x_train=data.x_train[:n], y_train=data.y_train[:n], x_dev=data.x_dev[:m],
        y_dev=data.y_dev[:m],
    )  # fmt: skip


def floor_epoch(model: nn.Module, data: Data, batch: int) -> Callable[[], tuple[float, float]]:
    """A function that runs the matrix products of one epoch of `model` and returns its CPU
    and wall seconds; the tensors it multiplies are drawn once, here."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    shapes = _input_shapes(model, data.x_train[:1])
    n_train, n_dev = len(data.y_train), len(data.y_dev)
    plans = {size: _products(layers, shapes, size, train=True) for size in _sizes(n_train, batch)}
    dev = {size: _products(layers, shapes, size, train=False) for size in _sizes(n_dev, EVAL_BATCH)}

    def run() -> tuple[float, float]:
        cpu, tic = time.process_time(), time.perf_counter()
        for size in _batches(n_train, batch):
            plans[size]()
        for size in _batches(n_dev, EVAL_BATCH):
            dev[size]()
        return time.process_time() - cpu, time.perf_counter() - tic

    return run


def _batches(n: int, size: int) -> list[int]:
    return [min(size, n - begin) for begin in range(0, n, size)]


def _sizes(n: int, size: int) -> set[int]:
    return set(_batches(n, size))


def _input_shapes(model: nn.Module, x: torch.Tensor) -> dict[nn.Module, tuple[int, ...]]:
    """Each product layer's input shape for one example (a forward pass with hooks)."""
    shapes: dict[nn.Module, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(lambda m, inputs, _: shapes.__setitem__(m, inputs[0].shape[1:]))
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)
    for hook in hooks:
        hook.remove()
    return shapes


def _products(
    layers: Sequence[nn.Module], shapes: dict[nn.Module, tuple[int, ...]], rows: int, *, train: bool
) -> Callable[[], None]:
    """One batch's products of `rows` examples: forward (and, when training, backward)."""
    steps: list[Callable[[], object]] = []
    for i, layer in enumerate(layers):
        x = torch.randn(rows, *shapes[layer])
        if isinstance(layer, nn.Linear):
            w = torch.randn(layer.out_features, layer.in_features)
            y, gy = torch.empty(rows, layer.out_features), torch.randn(rows, layer.out_features)
            gw, gx = torch.empty_like(w), torch.empty_like(x)
            steps.append(lambda x=x, w=w, y=y: torch.mm(x, w.t(), out=y))
            if train:
                steps.append(lambda x=x, gy=gy, gw=gw: torch.mm(gy.t(), x, out=gw))
                if i > 0:
                    steps.append(lambda w=w, gy=gy, gx=gx: torch.mm(gy, w, out=gx))
            continue
        assert isinstance(layer, nn.Conv2d)
        x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randn_like(layer.weight).contiguous(memory_format=torch.channels_last)
        pad = layer.padding
        y = F.conv2d(x, w, padding=pad)
        gy = torch.randn_like(y)
        steps.append(lambda x=x, w=w, pad=pad: F.conv2d(x, w, padding=pad))
        if train:
            mask = [i > 0, True, False]  # input grad past the first layer, weight grad, no bias
            steps.append(
                lambda x=x, w=w, gy=gy, pad=pad, mask=mask: torch.ops.aten.convolution_backward(
                    gy, x, w, None, [1, 1], list(pad), [1, 1], False, [0, 0], 1, mask
                )
            )

    def run() -> None:
        for step in steps:
            step()

    return run


def measure(network: str, batch: int, threads: int, data: Data, epochs: int) -> Pair:
    """`epochs` fit epochs, each followed by its floor epoch, on `threads` torch threads,
    after a first pair that warms up (and whose fit CPU time includes building the run)."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    config = config_for(network, batch, epochs + 1)
    floor = floor_epoch(build_model(config, data.input_shape, data.num_classes), data, batch)
    ticks: list[float] = []  # process CPU time at the end of each fit epoch and each floor
    floors: list[tuple[float, float]] = []

    def after_epoch(_: object) -> None:
        ticks.append(time.process_time())
        floors.append(floor())
        ticks.append(time.process_time())

    result = fit(config, data, on_epoch=after_epoch)
    cpu = [ticks[i] - ticks[i - 1] for i in range(2, len(ticks), 2)]
    walls = [e.seconds for e in result.epochs[1:]]
    return Pair(
        network, batch, threads, cpu, [c for c, _ in floors[1:]], walls, [w for _, w in floors[1:]]
    )


def profile(network: str, batch: int, data: Data, top: int = 12) -> list[tuple[str, float]]:
    """The shares of one `fit` epoch's time (training and dev pass, one thread) spent in each
    operation's own code, largest first; then the products (`PRODUCTS`) together and the time
    outside every operation. A `record_function` scope such as `Optimizer.step#SGD.step`
    counts the Python inside it as its own."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(1)
    config = config_for(network, batch, 1)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds = fit(config, data).epochs[0].seconds
    events = [(e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages()]
    events.sort(key=lambda e: -e[1])
    shares = [(key, t / seconds) for key, t in events[:top]]
    products = sum(t for key, t in events if key in PRODUCTS) / seconds
    outside = 1.0 - sum(t for _, t in events) / seconds
    return [
        *shares,
        ("matrix products (the floor's ops, summed)", products),
        ("outside every op (Python, the profiler's own cost)", outside),
    ]


def table(pairs: Sequence[Pair]) -> list[str]:
    lines = [
        "| network | batch | threads | fit / floor, CPU time | each pair | wall time |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for p in pairs:
        each = ", ".join(f"{a / b:.2f}" for a, b in zip(p.fit, p.floor, strict=True))
        lines.append(
            f"| {p.network} | {p.batch} | {p.threads} | **{p.ratio:.2f}x** | {each} | "
            f"{p.wall_ratio:.2f}x |"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--networks", nargs="+", default=["mlp", "cnn"], choices=NETWORKS)
    parser.add_argument("--batches", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, os.cpu_count() or 1])
    parser.add_argument("--epochs", type=int, default=3, help="interleaved pairs per case")
    parser.add_argument("--share", type=float, default=1.0, help="share of MNIST's rows (MLP)")
    parser.add_argument("--cnn-share", type=float, default=0.1, help="share of rows (CNN)")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--record", action="store_true", help=f"write {RESULTS.name}")
    args = parser.parse_args(argv)
    full = load_data(config_for("mlp", 64, 1, args.data_dir))
    pairs, profiles = [], {}
    for network in args.networks:
        data = subset(full, args.cnn_share if network == "cnn" else args.share)
        for batch in args.batches:
            for threads in args.threads:
                pairs.append(measure(network, batch, threads, data, args.epochs))
                print(table(pairs)[-1], flush=True)
        if not args.no_profile:
            profiles[network] = profile(network, min(args.batches), data)
    lines = [
        f"MNIST, {args.epochs} interleaved pairs per case (a `fit` epoch with its dev pass, "
        f"then the same epoch's products alone); MLP on {args.share:.0%} of the rows, CNN on "
        f"{args.cnn_share:.0%}; torch {torch.__version__}, {os.cpu_count()} cores.",
        "",
        *table(pairs),
    ]
    for network, shares in profiles.items():
        lines += [
            "",
            f"Profile, {network}, batch {min(args.batches)}, 1 thread (share of the epoch's "
            "time in each op's own code):",
            "",
            "| operation | share |",
            "| --- | ---: |",
            *(f"| `{key}` | {share:.1%} |" for key, share in shares),
        ]
    lines += ["", f"Command: `{shown_command('benchmarks.trainer_floor', sys.argv[1:])}`"]
    print("\n".join(lines))
    if args.record:
        write_section(SECTION, lines)
    return lines


if __name__ == "__main__":
    main()
