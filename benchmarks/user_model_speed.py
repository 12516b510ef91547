"""Does a user's model factory train as fast as the built-in MLP? (issue 11)

Two `trainer.fit` runs on MNIST with the same config (hidden [300, 100], batch 64, SGD,
torch's default init, seed 0, one torch thread), differing only in `model`:

- **builtin**: ``model = "mlp"``;
- **factory**: ``model = "models.py:build"``, a file this script writes to a temporary folder
  whose ``build`` returns the same layers (Flatten, Linear 784-300, ReLU, Linear 300-100, ReLU,
  Linear 100-10) with torch's default init. Before timing, the script checks that both networks
  have the same parameter count and, built from the same seed, the same initial weights.

The two runs take turns epoch by epoch (A B A B ...): each `fit` runs in its own thread and
hands the turn to the other in its `on_epoch` callback, so exactly one trains at any time and
both see the same machine load. `EpochResult.seconds` (training plus dev evaluation) stops
before `on_epoch` is called, so the hand-over is not timed. Each round swaps which run goes
first. Reported: the median epoch wall and CPU (thread) seconds of each (the first epoch's CPU
time includes `fit`'s set-up: building and checking the model), their ratio, the median of
the paired ratios (epoch k of one run against epoch k of the other, in the same round), and the
dev accuracy of each after the same number of epochs, with whether the two runs are identical
(every epoch's dev loss and accuracy, and the final weights).

Run from the repository root (about 1.5 minutes with the defaults on a busy 2-core machine):

    .venv/bin/python benchmarks/user_model_speed.py --epochs 5 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

import trainer
from trainer import Data, FitResult, TrainConfig, build_model, fit, load_data

ROOT = Path(__file__).resolve().parents[1]

MODELS_PY = textwrap.dedent(
    '''
    """The built-in MLP written as a user would: same layers, same order, torch's init."""

    from torch import nn


    def build(input_shape, num_classes, hidden=(300, 100)):
        features = 1
        for size in input_shape:
            features *= size
        layers = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, num_classes))
        return nn.Sequential(*layers)
    '''
)


class Turns:
    """Strict turn-taking between named threads: one runs, the others wait."""

    def __init__(self, names: list[str]) -> None:
        self._names = names
        self._turn = names[0]
        self._done: set[str] = set()
        self._cond = threading.Condition()

    def wait(self, me: str) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._turn == me)

    def pass_on(self, me: str) -> None:
        """Gives the turn to the next unfinished thread (keeps it when none is left)."""
        with self._cond:
            at = self._names.index(me)
            for step in range(1, len(self._names) + 1):
                name = self._names[(at + step) % len(self._names)]
                if name not in self._done or name == me:
                    self._turn = name
                    break
            self._cond.notify_all()

    def finish(self, me: str) -> None:
        with self._cond:
            self._done.add(me)
        self.pass_on(me)


def alternate(runs: dict[str, Callable[[Callable[[], None]], FitResult]]) -> dict[str, dict]:
    """Runs each `fit` in its own thread, one epoch at a time in turn, in the dict's order.

    Each callable gets a `yield_turn` to call from `on_epoch`. Returns, per run, the fit
    result and each epoch's thread CPU seconds (training and evaluation only).
    """
    turns = Turns(list(runs))
    out: dict[str, dict] = {name: {"cpu": [], "error": None} for name in runs}

    def body(name: str) -> None:
        cpu = out[name]["cpu"]
        turns.wait(name)
        tic = [time.thread_time()]

        def yield_turn() -> None:
            cpu.append(time.thread_time() - tic[0])
            turns.pass_on(name)
            turns.wait(name)
            tic[0] = time.thread_time()

        try:
            out[name]["result"] = runs[name](yield_turn)
        except BaseException as exc:  # re-raised in the main thread
            out[name]["error"] = exc
        finally:
            turns.finish(name)

    threads = [threading.Thread(target=body, args=(name,)) for name in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, got in out.items():
        if got["error"] is not None:
            raise RuntimeError(f"run '{name}' failed") from got["error"]
    return out


def check_same_network(builtin: TrainConfig, factory: TrainConfig, data: Data, folder: str) -> int:
    """Asserts equal parameter counts and equal initial weights; returns the count."""
    nets = []
    for config in (builtin, factory):
        torch.manual_seed(config.seed)  # as fit does before building
        nets.append(build_model(config, data.input_shape, data.num_classes, search_path=[folder]))
    params = [list(net.parameters()) for net in nets]
    counts = [sum(p.numel() for p in ps) for ps in params]
    assert counts[0] == counts[1], f"parameter counts differ: {counts}"
    assert len(params[0]) == len(params[1])
    for a, b in zip(*params, strict=True):
        assert a.shape == b.shape and torch.equal(a, b), "initial weights differ"
    return counts[0]


def identical(a: FitResult, b: FitResult) -> bool:
    """Same dev loss and accuracy at every epoch, and the same final weights."""
    same_curve = [(e.dev_loss, e.dev_accuracy) for e in a.epochs] == [
        (e.dev_loss, e.dev_accuracy) for e in b.epochs
    ]
    same_weights = all(
        torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )
    return same_curve and same_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each run per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each swaps who starts")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    folder = tempfile.mkdtemp(prefix="hpstudy-user-model-")
    Path(folder, "models.py").write_text(MODELS_PY)
    base = TrainConfig(
        dataset="mnist",
        data_dir=args.data_dir,
        hidden=(300, 100),
        batch_size=64,
        optimizer="sgd",
        lr=0.01,
        epochs=args.epochs,
        device="cpu",
        seed=0,
    )
    configs = {"builtin": base, "factory": base.replace(model="models.py:build")}
    data = load_data(base)  # one copy of the tensors, shared by both runs
    count = check_same_network(configs["builtin"], configs["factory"], data, folder)
    print(f"same network: {count:,} parameters each, identical initial weights")

    seconds: dict[str, list[float]] = {name: [] for name in configs}
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    results: dict[str, list[FitResult]] = {name: [] for name in configs}
    for round_ in range(args.rounds):
        order = list(configs) if round_ % 2 == 0 else list(reversed(configs))

        def runner(name: str) -> Callable[[Callable[[], None]], FitResult]:
            return lambda yield_turn: fit(
                configs[name], data, on_epoch=lambda _e: yield_turn(), search_path=[folder]
            )

        out = alternate({name: runner(name) for name in order})
        for name in configs:
            result = out[name]["result"]
            results[name].append(result)
            seconds[name] += [e.seconds for e in result.epochs]
            cpu[name] += out[name]["cpu"]
            print(
                f"round {round_ + 1} {name}: epochs "
                f"{', '.join(f'{e.seconds:.2f}' for e in result.epochs)} s; "
                f"dev accuracy {100 * result.epochs[-1].dev_accuracy:.2f}%"
            )
    load_after = os.getloadavg()

    med = {name: statistics.median(seconds[name]) for name in configs}
    med_cpu = {name: statistics.median(cpu[name]) for name in configs}
    first = {name: results[name][0] for name in configs}
    same = identical(first["builtin"], first["factory"])
    repeat = all(identical(results[n][0], r) for n in configs for r in results[n][1:])
    print()
    print("| model | median epoch (s) | median epoch CPU (s) | epochs timed | dev accuracy |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in configs:
        label = '`"mlp"` (built-in)' if name == "builtin" else '`"models.py:build"` (factory)'
        acc = first[name].epochs[-1].dev_accuracy
        print(
            f"| {label} | {med[name]:.3f} | {med_cpu[name]:.3f} | {len(seconds[name])} | "
            f"{100 * acc:.2f}% |"
        )
    print()
    # Epoch k of the factory run against epoch k of the built-in run of the same round:
    # neighbours in time, so a change of machine load hits both.
    paired = statistics.median(
        f / b for f, b in zip(seconds["factory"], seconds["builtin"], strict=True)
    )
    paired_cpu = statistics.median(
        f / b for f, b in zip(cpu["factory"], cpu["builtin"], strict=True)
    )
    print(
        f"factory / built-in: {med['factory'] / med['builtin']:.3f} (ratio of medians, wall), "
        f"{med_cpu['factory'] / med_cpu['builtin']:.3f} (CPU); median of paired epoch ratios "
        f"{paired:.3f} (wall), {paired_cpu:.3f} (CPU)"
    )
    diff = first["factory"].epochs[-1].dev_accuracy - first["builtin"].epochs[-1].dev_accuracy
    print(
        f"after {args.epochs} epochs: dev accuracy difference {100 * diff:+.2f} points; "
        f"runs identical (every epoch's dev loss and accuracy, final weights): {same}; "
        f"each run repeated identically over the rounds: {repeat}"
    )
    print(
        f"hpstudy from {Path(trainer.__file__).parent.parent}; "
        f"torch {torch.__version__}, {args.threads} torch thread(s); load average (1, 5, 15 min) "
        f"before: {', '.join(f'{x:.2f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.2f}' for x in load_after)}; {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
