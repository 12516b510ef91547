"""Transfer learning as the lecture describes it: reuse the lower layers, freeze some.

A network trained on MNIST digits 0-4 (the source task, all its ~30,000 training images) is
reused for digits 5-9 with only a few hundred labelled images (the target task): its hidden
layers are loaded with `init_from`, the output layer starts fresh (the source file's `out.*`
entries are left out, so the init scheme sets them), and `freeze = N` holds the lower N
weight layers fixed. Against the same network trained from scratch on the same few images,
over several seeds; each run is scored on the whole MNIST test set of digits 5-9.

    .venv/bin/python benchmarks/transfer_mnist.py                  # 300 labels, 5 seeds
    .venv/bin/python benchmarks/transfer_mnist.py --labels 100 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trainer import TrainConfig, evaluate, fit, has_mnist, load_data

ROOT = Path(__file__).resolve().parent.parent
ARMS = {  # name: (init_from the source, freeze)
    "scratch": (False, 0),
    "transfer, fine-tune all": (True, 0),
    "transfer, freeze 1": (True, 1),
    "transfer, freeze 2": (True, 2),
}


def mnist(data_dir: Path) -> tuple[np.ndarray, ...]:
    """MNIST's training and test images (uint8, N x 28 x 28) and labels."""
    from trainer import read_arrays

    arrays = read_arrays("mnist", str(data_dir))
    assert arrays.x_test is not None and arrays.y_test is not None
    return arrays.x_train[:, 0], arrays.y_train, arrays.x_test[:, 0], arrays.y_test


def write_tasks(data_dir: Path, folder: Path, labels: int, seed: int) -> tuple[Path, Path]:
    """source.npz (digits 0-4, all) and target.npz (`labels` images of 5-9, as 0-4)."""
    x, y, xt, yt = mnist(data_dir)
    low, high = y < 5, y >= 5
    source = folder / "source.npz"
    np.savez(source, x_train=x[low], y_train=y[low], x_test=xt[yt < 5], y_test=yt[yt < 5])
    picked = np.random.default_rng(seed).permutation(np.flatnonzero(high))[:labels]
    target = folder / f"target-{labels}.npz"
    np.savez(
        target,
        x_train=x[picked],
        y_train=y[picked] - 5,
        x_test=xt[yt >= 5],
        y_test=yt[yt >= 5] - 5,
    )
    return source, target


def base(dataset: Path, **changes: object) -> TrainConfig:
    values = {
        "dataset": str(dataset),
        "hidden": (300, 100),
        "activation": "relu",
        "init": "he_normal",
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 32,
        "device": "cpu",
        **changes,
    }
    return TrainConfig.from_dict(values)


def plot(results: dict[str, list[float]], labels: int, path: Path) -> None:
    """Test accuracy of every seed per arm, with the mean."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0.1, right=0.98, bottom=0.2, top=0.88)
    axes = figure.subplots()
    for x, values in enumerate(results.values()):
        axes.plot([x] * len(values), [100 * v for v in values], "o", color="C0", alpha=0.6)
        axes.plot([x - 0.2, x + 0.2], [100 * statistics.fmean(values)] * 2, color="C3")
    axes.set_xticks(range(len(results)), [arm.replace(", ", "\n") for arm in results])
    axes.set_ylabel("test accuracy, digits 5-9 (%)")
    axes.set_title(f"{labels} labelled images of 5-9; hidden layers from a net trained on 0-4")
    axes.grid(alpha=0.3, axis="y")
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--epochs", type=int, default=60, help="cap on the target runs")
    parser.add_argument(
        "--plot", default=str(ROOT / "benchmarks" / "transfer_mnist.png"), help="the picture"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not has_mnist(args.data_dir):
        raise SystemExit(f"no MNIST in {args.data_dir}: hpstudy fetch mnist")
    print(f"# load {os.getloadavg()[0]:.1f}; 1 torch thread; {args.labels} labels of 5-9")
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        source, target = write_tasks(Path(args.data_dir), folder, args.labels, seed=0)
        started = time.perf_counter()
        trained = fit(base(source, epochs=10, patience=3))
        data = load_data(base(source), with_test=True)
        scores = evaluate(trained.model, data.x_test, data.y_test)
        print(
            f"source (0-4, {len(data.y_train)} train images): test accuracy "
            f"{100 * scores.accuracy:.2f}% after {len(trained.epochs)} epochs "
            f"({time.perf_counter() - started:.0f} s)"
        )
        # The new task gets a new output layer: the file holds the hidden layers only.
        headless = folder / "source-hidden-layers.pt"
        state = {k: v for k, v in trained.model.state_dict().items() if not k.startswith("out.")}
        torch.save(state, headless)
        results: dict[str, list[float]] = {arm: [] for arm in ARMS}
        print("\n| seed | " + " | ".join(ARMS) + " |\n|---:|" + "---:|" * len(ARMS))
        for seed in args.seeds:
            row = []
            for arm, (reuse, freeze) in ARMS.items():
                config = base(
                    target,
                    seed=seed,
                    epochs=args.epochs,
                    patience=10,
                    dev_fraction=0.2,
                    init_from=str(headless) if reuse else "",
                    freeze=freeze,
                )
                result = fit(config)
                test = load_data(config, with_test=True)
                accuracy = evaluate(result.model, test.x_test, test.y_test).accuracy
                results[arm].append(accuracy)
                row.append(f"{100 * accuracy:.2f}%")
            print(f"| {seed} | " + " | ".join(row) + " |", flush=True)
        print("\n| arm | mean test accuracy | sd | min | max |\n|---|---:|---:|---:|---:|")
        for arm, values in results.items():
            sd = statistics.stdev(values) if len(values) > 1 else float("nan")
            print(
                f"| {arm} | {100 * statistics.fmean(values):.2f}% | {100 * sd:.2f} | "
                f"{100 * min(values):.2f}% | {100 * max(values):.2f}% |"
            )
        print(
            f"\n{len(test.y_test)} test images of digits 5-9; {time.perf_counter() - started:.0f} s"
        )
        plot(results, args.labels, Path(args.plot))
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
