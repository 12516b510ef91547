"""Records whole learning curves of configurations drawn uniformly from a spec's space.

Each configuration is drawn by Optuna's `RandomSampler` (one fixed seed, one `study.ask()` per
configuration, drawn through `search_space.suggest`, so conditional parameters such as
`momentum` appear only with the optimisers that use them), then trained by `trainer.fit` for
the spec's whole `epochs` with early stopping off (`patience = 0`): the curve is complete, and
a simulated search can replay early stopping on it. The data is the spec's own train/dev
split as the trainer makes it; the test split is never loaded. A run the trainer ends early
is one that diverged (a non-finite loss); its status says so.

Every finished configuration is appended at once to the output as one gzip member holding one
JSON line (a concatenation of gzip members is one valid gzip file), so an interrupted run
loses only the configurations in flight: started again with the same arguments, it skips the
indices already recorded. When every index is recorded the file is rewritten as one gzip
stream, sorted by index. The first line is a header (`"kind": "meta"`) with the spec, the
sampler seed and the base config; a record line holds `index`, `params` (the drawn values),
`seed`, `status`, `seconds` and `epochs` (per epoch: `epoch`, `train_loss`, `dev_loss`,
`dev_accuracy`, `lr`, `seconds`).

The files kept next to this module were made from the repository's root by (2 processes,
1 torch thread each, nice 10, on the shared 2-core machine; the reruns are the first 100
configurations again with seeds 1000 + i, for the surrogate's noise):

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.record digits-mlp --configs 400
    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.record digits-mlp --configs 100 \\
        --seed-offset 1000 --out benchmarks/hpobench/digits-mlp-reruns.jsonl.gz
    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.record mnist-mlp --configs 400

The same command again resumes a recording that was stopped.

Subnormal floats: configurations 0-141 of `mnist-mlp` were recorded before the trainer (and
this recorder's workers) flushed them; from configuration 142 on they are flushed. Flushing
changes results only where a value fell below about 1e-38 (a configuration's weights or
gradients settling near zero), and there it made epochs 15-20x faster.

Points inside the first epoch (`--fractions`, issue 28's rungs cheaper than an epoch) are
recorded apart, one epoch of each configuration with the same seed:

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.record digits-mlp --configs 400 \
        --epochs 1 --fractions 1/27,1/9,1/3 --processes 1 \
        --out benchmarks/hpobench/digits-mlp-fractions.jsonl.gz
    (the same with --configs 100 --seed-offset 1000 --out ...-fractions-reruns.jsonl.gz, and
    for mnist-mlp with --configs 400 --out benchmarks/hpobench/mnist-mlp-fractions.jsonl.gz)
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import math
import multiprocessing
import os
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from search_space import SearchSpace, nest, suggest
from studies import StudySpec, load_spec
from trainer import Data, EpochResult, TrainConfig, fit, load_data

HERE = Path(__file__).resolve().parent
EPOCH_FIELDS = ("epoch", "train_loss", "dev_loss", "dev_accuracy", "lr", "seconds", "fraction")
SAMPLER_SEED = 0
FORMAT = 1  # the record layout; a header of another format is refused


def default_path(spec_name: str) -> Path:
    """Where the recorded curves of a built-in spec are kept."""
    return HERE / f"{spec_name}.jsonl.gz"


def draw_params(spec: StudySpec, count: int, *, seed: int = SAMPLER_SEED) -> list[dict[str, Any]]:
    """`count` configurations drawn uniformly from the spec's space, in a fixed order.

    The draws depend only on `seed`, and more configurations extend a recording without
    changing the ones it holds. The spec's `enqueue` is not used.
    """
    return draw(spec.space, count, seed=seed, base=spec.train.to_dict())


def draw(
    space: SearchSpace, count: int, *, seed: int, base: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """`count` configurations drawn by a `RandomSampler` of `seed` (see `draw_params`)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    drawn = []
    for _ in range(count):
        trial = study.ask()
        drawn.append(suggest(trial, space, base=base))
        study.tell(trial, 0.0)
    return drawn


def config_of(base: TrainConfig, params: Mapping[str, Any], *, seed: int) -> TrainConfig:
    """The config that trains `params`: the base with them laid over, the given seed."""
    values = base.to_dict()
    return base.replace(**nest(dict(params), base=values), seed=seed)


def base_config(
    spec: StudySpec,
    *,
    epochs: int | None = None,
    data_dir: str | None = None,
    seed_offset: int = 0,
    fractions: Sequence[float] = (),
) -> TrainConfig:
    """The spec's training config on the CPU with early stopping off (the whole curve).

    With `fractions`, the dev split is also scored at those shares of the first epoch
    (`TrainConfig.fractions`: the first epoch's order is stratified); a record's epochs then
    hold those points too, each with its `fraction` (1.0 for a whole epoch).

    Configuration i trains with seed `seed_offset + i` (the base config's seed): a recording
    with another offset reruns the same configurations with other initial weights and batch
    orders, which measures how much reruns of one configuration differ.
    """
    base = spec.train.replace(patience=0, device="cpu", seed=seed_offset)
    if fractions:
        base = base.replace(fractions=tuple(fractions))
    if epochs is not None:
        base = base.replace(epochs=epochs)
    if data_dir is not None:
        base = base.replace(data_dir=data_dir)
    return base


def header(spec: StudySpec, base: TrainConfig, *, sampler_seed: int) -> dict[str, Any]:
    """The first line of a recording: what every record in it was drawn from and trained with."""
    return {
        "kind": "meta",
        "format": FORMAT,
        "spec": spec.name,
        "sampler_seed": sampler_seed,
        "space": spec.space.to_dict(),
        "train": base.to_dict(),
        "torch_threads": 1,  # per process (with processes = 0: this process's count)
    }


def read(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """The header, the records and whether the file ended cleanly.

    A file cut off while a line was written (the process was killed) ends in a broken gzip
    member or a partial line; everything before it is returned, and the flag is False.
    """
    if not path.exists():
        return None, [], True
    raw = path.read_bytes()
    lines: list[bytes] = []
    clean = True
    while raw:
        decompressor = zlib.decompressobj(wbits=31)  # one gzip member
        try:
            text = decompressor.decompress(raw)
        except zlib.error:
            clean = False
            break
        if not decompressor.eof:
            clean = False
            break
        lines.extend(text.splitlines())
        raw = decompressor.unused_data
    meta: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            clean = False
            break
        if number == 0 and item.get("kind") == "meta":
            meta = item
        else:
            records.append(item)
    return meta, records, clean


def write(path: Path, meta: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> None:
    """Rewrites the file as one gzip stream (header first, records by index), atomically."""
    temporary = path.with_name(path.name + ".tmp")
    with gzip.open(temporary, "wt", encoding="utf-8") as out:
        for item in [meta, *sorted(records, key=lambda r: r["index"])]:
            out.write(json.dumps(item) + "\n")
    os.replace(temporary, path)


def _append(path: Path, item: Mapping[str, Any]) -> None:
    with path.open("ab") as out:
        out.write(gzip.compress((json.dumps(item) + "\n").encode()))
        out.flush()
        os.fsync(out.fileno())


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- the worker processes ---------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _start_worker(base: TrainConfig, nice: int) -> None:
    import torch

    if nice:
        os.nice(nice)
    torch.set_num_threads(1)
    # Subnormal floats made some configurations' epochs 15-20x slower (a tiny weight decay
    # or lr leaves weights and gradients near zero); the trainer flushes them since
    # configuration 142 of mnist-mlp (see the module), as this process does for older ones.
    torch.set_flush_denormal(True)
    _worker["data"] = load_data(base)
    _worker["base"] = base


def _train(job: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    index, params = job
    return train_one(_worker["base"], _worker["data"], index, params)


def train_one(
    base: TrainConfig, data: Data, index: int, params: Mapping[str, Any]
) -> dict[str, Any]:
    """Trains one configuration to the end of its budget; its record (see the module)."""
    config = config_of(base, params, seed=base.seed + index)
    epochs: list[EpochResult] = []
    started = time.perf_counter()
    result = fit(config, data, on_epoch=epochs.append)
    return {
        "index": index,
        "params": {name: _plain(value) for name, value in params.items()},
        "seed": config.seed,
        "status": result.status.value,
        "seconds": time.perf_counter() - started,
        "epochs": [
            {name: _finite(getattr(epoch, name)) for name in EPOCH_FIELDS} for epoch in epochs
        ],
    }


def _finite(value: float) -> float | str | None:
    """JSON has no NaN or infinity: they are kept as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def record(
    spec: StudySpec,
    path: Path,
    *,
    configs: int,
    processes: int = 2,
    epochs: int | None = None,
    data_dir: str | None = None,
    sampler_seed: int = SAMPLER_SEED,
    seed_offset: int = 0,
    fractions: Sequence[float] = (),
    nice: int = 10,
    echo: Any = print,
) -> list[dict[str, Any]]:
    """Records configurations 0 .. configs-1 of the spec into `path`, skipping those it holds.

    Returns:
        Every record in the file, by index.

    Raises:
        ValueError: the file holds a recording of another spec, sampler seed or base config.
    """
    base = base_config(
        spec, epochs=epochs, data_dir=data_dir, seed_offset=seed_offset, fractions=fractions
    )
    meta = header(spec, base, sampler_seed=sampler_seed)
    found, records, clean = read(path)
    if found is not None and _identity(found) != _identity(meta):
        raise ValueError(
            f"{path} holds curves of another recording ({_identity(found)}), not "
            f"{_identity(meta)}: give another --out, or the arguments that made it"
        )
    records = list({r["index"]: r for r in reversed(records)}.values())  # first of each index
    done = {r["index"] for r in records}
    if not clean or found is None:
        if not clean:
            echo(f"{path}: cut off at the end; keeping its {len(records)} whole records")
        write(path, meta, records)
    todo = [(i, p) for i, p in enumerate(draw_params(spec, configs, seed=sampler_seed))]
    todo = [(i, p) for i, p in todo if i not in done]
    echo(f"{spec.name}: {len(done)} recorded, {len(todo)} to train in {processes} processes")
    started = time.time()
    for count, item in enumerate(_trained(base, todo, processes=processes, nice=nice), 1):
        _append(path, item)
        records.append(item)
        rate = (time.time() - started) / count
        echo(
            f"{spec.name} #{item['index']}: {item['status']}, "
            f"{len(item['epochs'])} epochs in {item['seconds']:.1f} s; "
            f"{count}/{len(todo)}, about {rate * (len(todo) - count) / 60:.0f} min left"
        )
    _, records, _ = read(path)
    if {r["index"] for r in records} >= set(range(configs)):
        write(path, meta, records)  # one gzip stream: compresses better than a member a line
    return sorted(records, key=lambda r: r["index"])


def _trained(
    base: TrainConfig, todo: list[tuple[int, dict[str, Any]]], *, processes: int, nice: int
) -> Iterator[dict[str, Any]]:
    """Each configuration's record as it finishes: in `processes` spawned processes of one
    torch thread each, or with 0 in this process as it is (no nice, its own thread count)."""
    if not todo:
        return
    if processes == 0:
        data = load_data(base)
        for index, params in todo:
            yield train_one(base, data, index, params)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_start_worker, initargs=(base, nice)) as pool:
        yield from pool.imap_unordered(_train, todo)


def _identity(meta: Mapping[str, Any]) -> tuple[Any, ...]:
    # a config key added since a recording began, at its default, does not make it another
    # recording (`fractions` = [], `labels` = 0, `pretrain_epochs` = 0 ... are what every
    # recording before them trained with)
    defaults = _config_defaults()
    train = {
        k: v
        for k, v in dict(meta.get("train") or {}).items()
        if k not in defaults or v != defaults[k]
    }
    return (meta.get("format"), meta.get("spec"), meta.get("sampler_seed"), train)


def _config_defaults() -> dict[str, Any]:
    """TrainConfig's defaults as the header writes them (JSON-ready), for the keys with one."""
    defaults: dict[str, Any] = {}
    for item in dataclasses.fields(TrainConfig):
        if item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            defaults[item.name] = item.default_factory()
    return json.loads(json.dumps(defaults, default=str))


def eval_fraction(text: str) -> float:
    """A share written as a decimal or a ratio: "0.25", "1/9"."""
    top, _, bottom = text.partition("/")
    return float(top) / float(bottom) if bottom else float(top)


def load(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A recording's header and its records by index.

    Raises:
        ValueError: the file has no header.
    """
    meta, records, _ = read(path)
    if meta is None:
        raise ValueError(f"{path} is not a recording of curves: it has no header line")
    return meta, sorted(records, key=lambda r: r["index"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="a built-in spec or a TOML path, e.g. mnist-mlp")
    parser.add_argument("--configs", type=int, default=400)
    parser.add_argument("--out", type=Path, help="default: benchmarks/hpobench/<spec>.jsonl.gz")
    parser.add_argument("--processes", type=int, default=2, help="0: in this process")
    parser.add_argument("--epochs", type=int, help="default: the spec's")
    parser.add_argument("--data-dir", help="default: the spec's (data)")
    parser.add_argument("--sampler-seed", type=int, default=SAMPLER_SEED)
    parser.add_argument(
        "--seed-offset", type=int, default=0, help="configuration i trains with seed offset + i"
    )
    parser.add_argument(
        "--fractions",
        type=lambda text: [float(eval_fraction(v)) for v in text.split(",")],
        default=[],
        help="shares of the first epoch where the dev split is scored too, e.g. 1/27,1/9,1/3",
    )
    parser.add_argument("--nice", type=int, default=10)
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    record(
        spec,
        args.out or default_path(spec.name),
        configs=args.configs,
        processes=args.processes,
        epochs=args.epochs,
        data_dir=args.data_dir,
        sampler_seed=args.sampler_seed,
        seed_offset=args.seed_offset,
        fractions=args.fractions,
        nice=args.nice,
        echo=lambda line: print(line, flush=True),
    )


if __name__ == "__main__":
    main()
