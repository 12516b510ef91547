"""`hpstudy train`: one config from a file, with a progress line per epoch."""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Iterator, Sequence
from typing import Any

from studies._errors import StudyError
from trainer import EpochResult, FitResult, TrainConfig, evaluate, fit, load_data, read_config_file


def format_epoch(result: EpochResult, epochs: int) -> str:
    """One progress line: losses, accuracies in percent, learning rate, seconds."""
    return (
        f"epoch {result.epoch:>3} [{result.epoch + 1}/{epochs}]  "
        f"train loss {result.train_loss:.4f} acc {100 * result.train_accuracy:6.2f}%  "
        f"dev loss {result.dev_loss:.4f} acc {100 * result.dev_accuracy:6.2f}%  "
        f"lr {result.lr:.3g}  {result.seconds:.1f}s"
    )


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`["epochs=3", "lr=0.1"]` -> {"epochs": 3, "lr": 0.1}, values in TOML syntax."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"--set takes KEY=VALUE, got '{pair}'")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare word is a string: --set optimizer=adam
    return out


@contextlib.contextmanager
def cpu_threads(device: Any, count: int | None, *, why: str = "") -> Iterator[str]:
    """Runs the block on `count` torch CPU threads when `device` is a CPU (None: as they are).

    Yields where it trains, for the first progress line: "cuda:0", or "cpu with 2 torch
    threads" followed by `why` when `count` was given.
    """
    if device.type != "cpu":
        yield str(device)
        return
    import torch

    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        now = torch.get_num_threads()
        plural = "s" if now != 1 else ""
        yield f"{device} with {now} torch thread{plural}{why if count is not None else ''}"
    finally:
        torch.set_num_threads(before)


def train_file(
    path: str,
    *,
    test: bool = False,
    overrides: Sequence[str] = (),
    threads: int | None = None,
    echo: Any = print,
) -> tuple[FitResult, dict[str, float]]:
    """Trains the config in `path`; returns the fit and, with `test`, test loss/accuracy.

    On a CPU, `threads` torch threads train it; without `threads`, an exported config runs on
    the thread count its trial had, which repeats the trial's numbers exactly (a different
    count changes the summation order, and with it the run).
    """
    if threads is not None and threads < 1:
        raise StudyError(f"--threads must be at least 1, got {threads}")
    config = TrainConfig.load(path)
    if overrides:
        config = config.replace(**parse_overrides(overrides))
    data = load_data(config, with_test=test)
    why = ""
    if threads is None:  # an exported trial's own count: `[provenance] torch_threads`
        stored = read_config_file(path).get("provenance", {}).get("torch_threads")
        if isinstance(stored, int) and stored >= 1:
            threads, why = stored, ", as its trial did (--threads changes it)"
    with cpu_threads(data.x_train.device, threads, why=why) as where:
        echo(
            f"training {config.model} on {config.dataset}: {data.identity['train']} train / "
            f"{data.identity['dev']} dev examples, up to {config.epochs} epochs on {where}"
        )
        result = fit(config, data, on_epoch=lambda e: echo(format_epoch(e, config.epochs)))
    best = result.best
    if best is None:
        echo(f"run {result.status}: no epoch had a finite dev loss")
        return result, {}
    echo(
        f"{result.status} after {len(result.epochs)} epochs in {result.seconds:.1f}s; "
        f"best epoch {best.epoch}: dev loss {best.dev_loss:.4f}, "
        f"dev accuracy {100 * best.dev_accuracy:.2f}%"
    )
    scores: dict[str, float] = {}
    if test:
        if data.x_test is None or data.y_test is None:
            raise StudyError(f"data set '{config.dataset}' has no test split")
        loss, accuracy = evaluate(result.model, data.x_test, data.y_test)
        scores = {"test_loss": loss, "test_accuracy": accuracy}
        echo(
            f"test loss {loss:.4f}, test accuracy {100 * accuracy:.2f}% "
            f"({len(data.y_test)} examples)"
        )
    return result, scores
