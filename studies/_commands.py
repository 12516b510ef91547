"""What the study commands of the CLI do; `_cli.py` holds only their arguments."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import optuna
from rich.console import Console

from studies._errors import StudyError
from studies._progress import count, trials_table
from studies._runner import run_study
from studies._spec import DEFAULT_STORAGE, builtin_specs, load_spec
from studies._storage import open_storage, redact
from studies._study import load_study
from studies._train import parse_overrides
from studies._worker import WorkerOptions, run_worker

SUMMARY_ROWS = 10  # best trials shown after a run


def _console() -> Console:
    return Console(width=max(Console().width, 120) if sys.stdout.isatty() else 160)


def run_command(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    changes: dict[str, Any] = {}
    if args.storage:
        changes["storage"] = args.storage
    if args.name:
        changes["name"] = args.name
    if args.n_trials is not None:
        if args.n_trials < 1:
            raise StudyError(f"--n-trials must be at least 1, got {args.n_trials}")
        changes["n_trials"] = args.n_trials
    if args.timeout is not None:
        changes["timeout"] = args.timeout
    if args.set:
        changes["train"] = spec.train.replace(**parse_overrides(args.set))
    spec = spec.replace(**changes)
    console = _console()
    study = run_study(
        spec,
        workers=args.workers,
        echo=lambda line: console.print(
            line, end="" if line.startswith("\r") else "\n", highlight=False
        ),
        live=sys.stdout.isatty(),
        heartbeat=args.heartbeat,
        grace=args.grace,
    )
    console.print(trials_table(study, limit=SUMMARY_ROWS, title=f"best trials of '{spec.name}'"))
    _next_steps(console, spec.name, spec.storage)
    return 0


def _next_steps(console: Console, name: str, storage: str) -> None:
    flag = "" if storage == DEFAULT_STORAGE else f" --storage {storage}"
    console.print(
        "next:\n"
        f"  hpstudy dashboard{flag}                  browse the study in optuna-dashboard\n"
        f"  hpstudy export {name}{flag} -o best.toml   the best config, ready for hpstudy train\n"
        f"  hpstudy train best.toml --test           retrain it and report the test set",
        highlight=False,
    )


def worker_command(args: argparse.Namespace) -> int:
    import logging
    import warnings

    from studies._signals import Stop

    threads = os.environ.get("HPSTUDY_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    stop = Stop().install()  # Ctrl-C / SIGTERM: the running trial is re-queued, then we exit
    summary = run_worker(
        args.study,
        args.storage,
        options=WorkerOptions(
            index=args.index,
            timeout=args.timeout,
            heartbeat_interval=args.heartbeat,
            grace_period=args.grace,
        ),
        stop=stop,
    )
    stopped = ", stopped by a signal (its trial re-queued)" if summary.interrupted else ""
    print(
        f"worker {args.index}: {summary.trials} trials run, {summary.failed} failed{stopped}",
        flush=True,
    )
    return 0


def _storage(args: argparse.Namespace) -> tuple[str, optuna.storages.BaseStorage]:
    url = args.storage or DEFAULT_STORAGE
    return url, open_storage(url, heartbeat_interval=None)


def status_command(args: argparse.Namespace) -> int:
    url, storage = _storage(args)
    study = load_study(storage, args.study, url=url)
    counts = count(study)
    console = _console()
    raw_spec = study.user_attrs.get("hpstudy_spec")
    budget = None
    if raw_spec:
        import json

        budget = json.loads(raw_spec)["study"].get("n_trials")
    metric = (study.metric_names or ["value"])[0]
    best = "-" if counts.best is None else f"{counts.best:.4f} (trial {counts.best_trial})"
    console.print(
        f"study '{study.study_name}' in {redact(url)}\n"
        f"  {metric} ({study.direction.name.lower()}), budget {budget or '-'} trials\n"
        f"  {counts.finished} finished: {counts.complete} complete, {counts.pruned} pruned; "
        f"{counts.failed} failed, {counts.running} running, {counts.waiting} waiting\n"
        f"  best {best}",
        highlight=False,
    )
    if counts.complete:
        console.print(trials_table(study, limit=5, title="best trials"))
    return 0


def studies_command(args: argparse.Namespace) -> int:
    url, storage = _storage(args)
    summaries = optuna.get_all_study_summaries(storage)
    console = _console()
    if not summaries:
        console.print(f"no studies in {redact(url)}")
        return 0
    from rich.table import Table

    table = Table(title=f"studies in {redact(url)}", title_justify="left")
    for column in ("name", "trials", "best", "direction", "started"):
        table.add_column(column)
    for summary in sorted(summaries, key=lambda s: s.study_name):
        best = summary.best_trial
        table.add_row(
            summary.study_name,
            str(summary.n_trials),
            "-" if best is None or best.value is None else f"{best.value:.4f}",
            summary.direction.name.lower(),
            "-" if summary.datetime_start is None else f"{summary.datetime_start:%Y-%m-%d %H:%M}",
        )
    console.print(table)
    return 0


def trials_command(args: argparse.Namespace) -> int:
    url, storage = _storage(args)
    study = load_study(storage, args.study, url=url)
    _console().print(trials_table(study, limit=args.limit, title=f"trials of '{args.study}'"))
    return 0


def specs_command(args: argparse.Namespace) -> int:
    for name, path in sorted(builtin_specs().items()):
        spec = load_spec(str(path))
        print(f"{name:<12} {spec.description}")
    return 0
