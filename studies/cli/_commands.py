"""What the study commands of the CLI do; `_main.py` holds only their arguments."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import optuna
from rich.console import Console
from rich.table import Table

from studies._errors import StudyError
from studies.results import trials_table
from studies.spec import (
    DEFAULT_STORAGE,
    ENV_PREFIX,
    STORAGE_ENV,
    StudySpec,
    builtin_specs,
    check_data,
    load_spec,
    ray_settings,
)
from studies.storage import (
    SPEC_ATTR,
    Target,
    create_engine,
    load_study,
    open_storage,
    public_url,
    redact,
    require_database,
    resolve_storage,
)
from studies.workers import count, describe_reached

# The runner, the worker and `hpstudy train` import torch (seconds): each command imports what
# it needs, so that the commands that only read (specs, status, studies, trials) start quickly.

SUMMARY_ROWS = 10  # best trials shown after a run


def _console() -> Console:
    return Console(width=max(Console().width, 120) if sys.stdout.isatty() else 160)


def _quiet_optuna() -> None:
    """Hides Optuna's INFO lines ("A new study created ..."): our progress says it better.

    Its warnings stay visible; only the experimental-feature notes of the choices hpstudy
    makes itself are silenced, where they are made (`_samplers`, `_study`).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_command(args: argparse.Namespace) -> int:
    from studies.workers import run_study

    _quiet_optuna()
    _warn_password_in_argv(args.storage)
    spec = _with_overrides(load_spec(args.spec), args)
    ray = ray_settings(
        spec.ray,
        args.ray,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
    )
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
        warm_start=args.warm_start,
        ray=ray,
    )
    console.print(trials_table(study, limit=SUMMARY_ROWS, title=f"best trials of '{spec.name}'"))
    _next_steps(console, spec.name, spec.storage)
    return 0


def _warn_password_in_argv(storage: str | None) -> None:
    """Says when the user's own --storage shows a password to every user of the machine.

    Nothing hpstudy starts repeats it (workers get the URL by environment), but this command's
    line stays in `ps` for as long as it runs.
    """
    if storage and public_url(storage) != storage:
        print(
            f"warning: the password in --storage is visible to every user of this machine "
            f"(ps) while this command runs; put the URL in a variable (--storage env:NAME, "
            f"or {STORAGE_ENV}) or the password in ~/.pgpass",
            file=sys.stderr,
            flush=True,
        )


def _with_overrides(spec: StudySpec, args: argparse.Namespace) -> StudySpec:
    """The spec with the command line's changes, validated again as a whole.

    Raises:
        SpecError: naming the spec file, the flags and the key of each problem.
    """
    from studies.results import parse_overrides

    data = spec.to_dict()
    flags = []
    for key, flag in (
        ("storage", "storage"),
        ("name", "name"),
        ("n_trials", "n-trials"),
        ("seed", "seed"),
    ):
        value = getattr(args, key)
        if value is not None:
            data["study"][key] = value
            flags.append(f"--{flag} {redact(value) if key == 'storage' else value}")
    if args.timeout is not None:
        data["study"]["timeout"] = args.timeout
        flags.append(f"--timeout {args.timeout:g}")
    if args.set:
        data["train"].update(parse_overrides(args.set))
        flags += [f"--set {pair}" for pair in args.set]
    if not flags:
        return spec
    changed = StudySpec.from_dict(data, source=f"{spec.source} (with {' '.join(flags)})")
    check_data(changed)
    return changed


def _next_steps(console: Console, name: str, storage: str) -> None:
    default = f"{ENV_PREFIX}{STORAGE_ENV}" if os.environ.get(STORAGE_ENV) else DEFAULT_STORAGE
    # env:NAME is shown as such: it holds no secret, and the command works as printed.
    flag = "" if storage == default else f" --storage {redact(storage)}"
    steps = [
        (f"hpstudy export {name}{flag} -o best.toml", "the best config, ready for hpstudy train"),
        ("hpstudy train best.toml --test", "train it again and report the test set"),
        (f"hpstudy dashboard{flag}", "browse the study in optuna-dashboard"),
        (f"hpstudy report {name}{flag}", "one HTML page about the study"),
    ]
    width = max(len(command) for command, _ in steps)
    lines = [f"  {command:<{width}}   {what}" for command, what in steps]
    console.print("next:\n" + "\n".join(lines), highlight=False, soft_wrap=True)


def plan_command(args: argparse.Namespace) -> int:
    from studies.workers._plan import parse_budget, plan

    _quiet_optuna()
    try:
        budget = parse_budget(args.budget)
    except ValueError:
        raise StudyError(
            f"--budget takes a duration such as 30m, 1.5h or 900 (seconds), got '{args.budget}'"
        ) from None
    if args.workers < 1:
        raise StudyError(f"--workers must be at least 1, got {args.workers}")
    spec = load_spec(args.spec)
    fits = plan(spec, budget=budget, workers=args.workers)
    for line in fits.lines(spec):
        print(line)
    return 0


def lr_range_command(args: argparse.Namespace) -> int:
    from studies.analysis import plot_lr_ranges
    from studies.results import check_output
    from studies.workers import run_range_tests

    _quiet_optuna()
    if args.steps < 20:
        raise StudyError(f"--steps must be at least 20, got {args.steps}")
    path = check_output(args.output, (".png",))
    spec = load_spec(args.spec)
    ranges = run_range_tests(spec, steps=args.steps)
    found = {name: r.to_dict() for name, r in ranges.items()}
    path.write_bytes(plot_lr_ranges(found, title=f"learning-rate range test: {spec.name}"))
    print(f"wrote {path}; to search inside these bounds, set auto = true in [space.lr]")
    return 0


def ablate_command(args: argparse.Namespace) -> int:
    from studies.results._ablation import ablation_rich_table, ablation_rows
    from studies.workers import run_study
    from studies.workers._ablate import ablation_spec

    _quiet_optuna()
    factors = [f.strip() for f in args.factors.split(",") if f.strip()]
    if args.output:
        from studies.results import check_output

        check_output(args.output, (".png",))
    base = load_spec(args.spec)
    if args.storage:
        base = base.replace(storage=args.storage)
    spec = ablation_spec(base, factors, args.repeats)
    console = _console()
    cells = spec.n_trials or 0
    console.print(
        f"ablation of {', '.join(factors)} in '{base.name}': {cells // args.repeats} cells x "
        f"{args.repeats} seeds = {cells} runs, as study '{spec.name}'",
        highlight=False,
    )
    study = run_study(
        spec, workers=args.workers, echo=lambda line: console.print(line, highlight=False)
    )
    rows = ablation_rows(study, factors)
    console.print(ablation_rich_table(rows, factors, spec.metric))
    if args.output:
        from studies.analysis import plot_ablation

        Path(args.output).write_bytes(plot_ablation(rows, factors, spec.metric))
    worse = [r for r in rows if r.worse]
    console.print(
        f"{len(worse)} of {len(rows) - 1} cells are significantly worse than the best "
        f"({', '.join(map(str, rows[0].cell))}) by a paired t-test over seeds, Holm-corrected "
        f"at 5%; kept with the study (hpstudy report {spec.name})",
        highlight=False,
    )
    return 0


def learning_curve_command(args: argparse.Namespace) -> int:
    from studies.results import check_output
    from studies.results._size_curve import learning_curve

    _quiet_optuna()
    try:
        sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise StudyError(f"--sizes takes shares such as 0.1,0.5,1.0; got '{args.sizes}'") from None
    if args.output:
        check_output(args.output, (".png",))
    learning_curve(
        args.study,
        url=args.storage,
        number=args.trial,
        sizes=sizes,
        repeats=args.repeats,
        output=args.output,
    )
    return 0


def worker_command(args: argparse.Namespace) -> int:
    import logging
    import warnings

    from studies.workers import Stop, WorkerOptions, run_worker

    if args.storage is None and not os.environ.get(STORAGE_ENV):
        raise StudyError(
            f"hpstudy worker needs the study's database: --storage URL, --storage env:NAME "
            f"(the URL in variable NAME), or {STORAGE_ENV} set to the URL"
        )
    _warn_password_in_argv(args.storage)
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
        resolve_storage(args.storage),
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
    """The storage a reading command names, never creating a database that is not there.

    Raises:
        StudyError: for a SQLite file that does not exist, or a storage that cannot be reached.
    """
    _quiet_optuna()
    url = resolve_storage(args.storage)
    require_database(url)
    return url, open_storage(url)


def status_command(args: argparse.Namespace) -> int:
    url, storage = _storage(args)
    study = load_study(storage, args.study, url=url)
    counts = count(study)
    raw_spec = study.user_attrs.get(SPEC_ATTR)
    stored = json.loads(raw_spec)["study"] if raw_spec else {}
    budget = stored.get("n_trials")
    metric = (study.metric_names or ["value"])[0]
    best = "-" if counts.best is None else f"{counts.best:.4f} (trial {counts.best_trial})"
    console = _console()
    console.print(
        f"study '{study.study_name}' in {redact(url)}\n"
        f"  {metric} ({study.direction.name.lower()}), budget {budget or '-'} trials\n"
        f"  {counts.finished} finished: {counts.complete} complete, {counts.pruned} pruned; "
        f"{counts.failed} failed, {counts.running} running, {counts.waiting} waiting\n"
        f"  best {best}",
        highlight=False,
    )
    console.print(f"  {_target_line(stored.get('target'), url, study)}", highlight=False)
    if counts.complete:
        console.print(trials_table(study, limit=5, title="best trials"))
    return 0


def _target_line(target: dict[str, float] | None, url: str, study: optuna.Study) -> str:
    """Whether and when the study's target was reached."""
    if not target:
        return "no target (set study.target, e.g. target = { dev_accuracy = 0.98 })"
    [(metric, value)] = target.items()
    engine = create_engine(url)
    try:
        study_id = open_storage(url).get_study_id_from_name(study.study_name)
        reached = Target(engine, study_id, metric, value).reached()
    finally:
        engine.dispose()
    if reached is None:
        return f"target {metric} {value:g}: not reached yet"
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    return describe_reached(reached, started=min(starts) if starts else None)


def studies_command(args: argparse.Namespace) -> int:
    url, storage = _storage(args)
    summaries = optuna.get_all_study_summaries(storage)
    console = _console()
    if not summaries:
        console.print(f"no studies in {redact(url)}", highlight=False)
        return 0
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
    table = Table(title="built-in study specs (hpstudy run NAME)", title_justify="left")
    for column in ("name", "trials", "epochs", "metric", "searches", "description"):
        table.add_column(column, overflow="fold")
    for name, path in sorted(builtin_specs().items()):
        spec = load_spec(str(path))
        table.add_row(
            name,
            str(spec.n_trials or "-"),
            str(spec.train.epochs),
            spec.metric,
            ", ".join(spec.space.names),
            spec.description,
        )
    _console().print(table)
    return 0
