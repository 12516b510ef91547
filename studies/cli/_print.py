"""What the commands print: tables and sentences made of the public API's records."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

import studies


def console() -> Console:
    return Console(width=max(Console().width, 120) if sys.stdout.isatty() else 160)


def echo_to(out: Console) -> Callable[[str], None]:
    """Progress lines to `out`; a line starting with "\\r" redraws the last one."""
    return lambda line: out.print(line, end="" if line.startswith("\r") else "\n", highlight=False)


def trials_table(trials: studies.TrialRows, *, title: str | None = None) -> Table:
    """A table of trials, in the order given; with several objectives a column per objective
    and one marking the Pareto front (and trials that break a constraint); with enqueued
    trials (priors, warm starts) a column saying where each came from."""
    table = Table(title=title, title_justify="left")
    names = trials.objectives if trials.several else (trials.metric,)
    marked = trials.several or trials.constrained
    crossed = trials.crossed  # a trial of several networks (folds, repeats): their spread
    sourced = trials.sourced  # enqueued trials (priors, warm starts): where each came from
    columns = (
        "#",
        "state",
        *names,
        *(("front",) if marked else ()),
        *(("folds",) if crossed else ()),
        "epochs",
        "stop",
        "where",
        "diagnosis",
        *(("from",) if sourced else ()),
        "hyperparameters" if "params" in names else "params",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in trials.rows:
        values = row.values if trials.several else (row.value,)
        # a pruned trial has no objective values, but its network's measures are known
        shown = [
            _value(values[i] if i < len(values) else row.measured.get(name))
            for i, name in enumerate(names)
        ]
        mark = ("*" if row.front else "infeasible" if not row.feasible else "",) if marked else ()
        spread = (_folds_cell(row.folds),) if crossed else ()
        table.add_row(
            str(row.number),
            row.state,
            *shown,
            *mark,
            *spread,
            _or_dash(row.epochs),
            _or_dash(row.stop),
            row.where or "-",
            ", ".join(row.diagnosis) or "-",
            *((row.source or "-",) if sourced else ()),
            " ".join(f"{k}={_fmt(v)}" for k, v in row.params.items()),
        )
    return table


def _value(value: float | None) -> str:
    if value is None:
        return "-"
    if value.is_integer() and abs(value) >= 1:  # a count: params, flops, bytes
        return str(int(value))
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.6g}"


def status_text(status: studies.StudyStatus) -> str:
    counts = status.counts
    best = "-" if counts.best is None else f"{counts.best:.4f} (trial {counts.best_trial})"
    if counts.front is not None:
        best = f"Pareto front: {counts.front} trials (marked * in the table below)"
    objectives = ", ".join(f"{n} ({d})" for n, d in status.directions.items()) or (
        f"{status.metric} ({status.direction})"
    )
    bounds = f"; constraints {', '.join(status.constraints)}" if status.constraints else ""
    return (
        f"study '{status.name}' in {status.storage}\n"
        f"  {objectives}{bounds}, budget {status.budget or '-'} trials\n"
        f"  {counts.finished} finished: {counts.complete} complete, {counts.pruned} pruned; "
        f"{counts.failed} failed, {counts.running} running, {counts.waiting} waiting\n"
        f"  best {best}\n"
        f"  {status.target}"
    )


def studies_table(storage: str, rows: Sequence[studies.StudyRow]) -> Table:
    table = Table(title=f"studies in {storage}", title_justify="left")
    for column in ("name", "trials", "best", "direction", "started"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            str(row.trials),
            "-" if row.best is None else f"{row.best:.4f}",
            row.direction,
            "-" if row.started is None else f"{row.started:%Y-%m-%d %H:%M}",
        )
    return table


def specs_table(rows: Sequence[studies.SpecRow]) -> Table:
    table = Table(title="built-in study specs (hpstudy run NAME)", title_justify="left")
    for column in ("name", "trials", "epochs", "metric", "searches", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.name,
            str(row.n_trials or "-"),
            str(row.epochs),
            row.metric,
            ", ".join(row.searches),
            row.description,
        )
    return table


def ablation_table(ablation: studies.AblationResult) -> Table:
    metric = ablation.metric
    table = Table(title=f"mean {metric} per cell, 95% interval over seeds", title_justify="left")
    columns = (
        *ablation.factors,
        "runs",
        "diverged",
        f"mean {metric}",
        "95% interval",
        "p vs best (Holm)",
    )
    for column in (*columns, ""):
        table.add_column(column)
    for row in ablation.rows:
        interval = "-" if math.isnan(row.low) else f"[{row.low:.4f}, {row.high:.4f}]"
        p = "best" if row.p_vs_best is None else f"{row.p_vs_best:.3g}"
        p = "too few seeds" if p == "nan" else p
        table.add_row(
            *(str(v) for v in row.cell),
            str(row.n),
            str(row.lost or ""),
            f"{row.mean:.4f}",
            interval,
            p,
            "worse" if row.worse else "",
        )
    return table


def next_steps(name: str, storage: str, *, pick: str | None = None) -> str:
    """The commands to run after a study, with the storage flag when it is not the default.

    Args:
        pick: a study of several objectives: the condition its export line shows.
    """
    env = f"env:{studies.STORAGE_ENV}"
    default = env if os.environ.get(studies.STORAGE_ENV) else studies.DEFAULT_STORAGE
    # env:NAME is shown as such: it holds no secret, and the command works as printed.
    flag = "" if storage == default else f" --storage {studies.redact(storage)}"
    steps = [
        (f"hpstudy export {name}{flag} -o best.toml", "the best config, ready for hpstudy train")
        if pick is None
        else (
            f'hpstudy export {name}{flag} --pick "{pick}" -o best.toml',
            "the most accurate front trial that meets it (or --trial N)",
        ),
        ("hpstudy train best.toml --test", "train it again and report the test set"),
        (f"hpstudy dashboard{flag}", "browse the study in optuna-dashboard"),
        (f"hpstudy report {name}{flag}", "one HTML page about the study"),
    ]
    width = max(len(command) for command, _ in steps)
    return "next:\n" + "\n".join(f"  {command:<{width}}   {what}" for command, what in steps)


def warn_password_in_argv(storage: str | None) -> None:
    """Says when the user's own --storage shows a password to every user of the machine.

    Nothing hpstudy starts repeats it (workers get the URL by environment), but this command's
    line stays in `ps` for as long as it runs.
    """
    if storage and studies.public_url(storage) != storage:
        print(
            f"warning: the password in --storage is visible to every user of this machine "
            f"(ps) while this command runs; put the URL in a variable (--storage env:NAME, "
            f"or {studies.STORAGE_ENV}) or the password in ~/.pgpass",
            file=sys.stderr,
            flush=True,
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    return str(value)


def _folds_cell(folds: dict[str, Any] | None) -> str:
    """ "± 0.0082: 0.1100 0.1300 0.1200" (the standard deviation, then each network's value)."""
    if not folds:
        return "-"
    return f"± {folds['std']:.4f}: " + " ".join(f"{v:.4f}" for v in folds["values"])


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)
