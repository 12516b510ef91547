"""hpstudy from Python: running studies, exporting and training configs.

    import studies

    study = studies.run("my-study.toml", workers=2)    # or a built-in name, or a dict
    print(study.best_value)
    path = studies.export("my-study", output="best.toml")
    result, scores = studies.train(path, test=True)

Each function does what the matching `hpstudy` command does (the command line only parses its
flags, calls the function and prints what it returns) and raises `studies.UserError`, with the
message the command prints, for anything the user can fix.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from studies._errors import ParameterError, user_errors
from studies.results import open_study
from studies.spec import STORAGE_ENV, SpecError, StudySpec, check_data, load_spec, ray_settings
from studies.storage import resolve_storage

if TYPE_CHECKING:
    from studies.workers import WorkerSummary
    from trainer import CrossResult, FitResult

Echo = Callable[[str], None]
SpecLike = str | Path | Mapping[str, Any] | StudySpec


@user_errors
def spec_of(
    spec: SpecLike,
    *,
    train_fields: Mapping[str, Any] | None = None,
    given_as: str | None = None,
    **overrides: Any,
) -> StudySpec:
    """A checked spec from a built-in name, a TOML path, a dict (as the TOML file holds) or a
    `StudySpec`, with `[study]` keys overridden (name, storage, n_trials, timeout, seed, ...).

    Relative paths in a dict's `[train]` start in the current folder, as in a file they start
    beside the file.

    Args:
        train_fields: `[train]` fields to override for every trial, e.g. {"epochs": 5}.
        given_as: how the overrides were given, for error messages (the command line names
            its flags); by default they are listed as key=value.
        **overrides: `[study]` keys; None values are ignored.

    Raises:
        SpecError: listing every problem, naming the spec and the overrides.
    """
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if isinstance(spec, StudySpec):
        data, source = spec.to_dict(), spec.source
    elif isinstance(spec, Mapping):
        data, source = copy.deepcopy(dict(spec)), "<dict>"
        study = data.setdefault("study", {})
        if isinstance(study, dict):
            study.setdefault("folder", str(Path.cwd()))
    else:
        loaded = load_spec(str(spec))
        if not overrides and not train_fields:
            return loaded
        data, source = loaded.to_dict(), loaded.source
    changed = {**overrides, **(train_fields or {})}
    for table, values in (("study", overrides), ("train", train_fields or {})):
        if values:
            section = data.setdefault(table, {})
            if not isinstance(section, dict):
                raise SpecError([f"[{table}] must be a table"], source=source)
            section.update(values)
    shown = given_as or ", ".join(f"{k}={v!r}" for k, v in changed.items() if k != "storage")
    source = f"{source} (with {shown})" if shown else source
    checked = StudySpec.from_dict(data, source=source)
    check_data(checked)
    return checked


@user_errors
def run(
    spec: SpecLike,
    *,
    model: Callable[..., Any] | None = None,
    data: Any = None,
    workers: int = 1,
    train_fields: Mapping[str, Any] | None = None,
    progress: bool = True,
    echo: Echo | None = None,
    live: bool = False,
    heartbeat: int | None = None,
    grace: int | None = None,
    warm_start: Sequence[str] = (),
    ray: bool | str | Mapping[str, Any] | None = None,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float | None = None,
    **overrides: Any,
) -> optuna.Study:
    """Creates or resumes a study and runs `workers` workers until it is done.

    A script's or a notebook's own factory and data need no file: `model=build` and
    `data=(x, y)` are kept in the study's database (the function pickled by value with
    cloudpickle, the arrays as an .npz of at most `studies.kept.MAX_INLINE_MB`), and every
    worker, here or on another machine, loads them from there. Loading a function from a
    study runs its code: open only studies whose database you trust.

    Args:
        spec: a built-in name ("digits-mlp"), a TOML path, a dict or a `StudySpec`.
        model: the model factory itself, in place of [train] model: called with keyword
            arguments as a factory named there is (input_shape, num_classes, model_args).
        data: the data itself, in place of [train] dataset: a mapping with x_train and
            y_train (optionally x_test and y_test, and x_unlabeled: inputs without labels,
            which pre-training uses), an `(x_train, y_train)` tuple, a map-style torch
            `Dataset` of (x, y) items (numpy arrays or tensors), or a loader function (as
            [train] dataset names one). Arrays are used with their shapes as given.
        workers: worker processes on this machine, or Ray tasks with `ray`.
        train_fields: `[train]` fields to override for every trial, e.g. {"epochs": 5}.
        progress: show progress: one line redrawn in place in a notebook, lines otherwise.
        echo: where progress lines go instead (a line starting with "\\r" redraws the last one
            when `live`).
        live: redraw the progress line in place (a terminal).
        heartbeat: seconds between a running trial's heartbeats (kept with the study).
        grace: seconds without a heartbeat after which a trial is failed and re-queued.
        warm_start: exported config files or studies (`NAME@URL`) to try first, once.
        ray: run the workers as Ray tasks (pip install 'hpstudy[ray]'): True for a Ray
            started on this machine, an address ("auto", "ray://head:10001") to join a
            cluster, or a table as the spec's `[study] ray` (address, cpus_per_worker,
            gpus_per_worker); None keeps the spec's.
        cpus_per_worker: CPUs (and torch threads) of each Ray worker; None keeps the spec's.
        gpus_per_worker: GPUs of each Ray worker (0.25 packs four on a device).
        **overrides: `[study]` keys: name, storage, n_trials, timeout, seed, sampler, pruner,
            priors (False: no first trials from earlier studies of the same task).

    Returns:
        The Optuna study, loaded from its storage.

    Raises:
        UserError: for a bad spec, user code or data (NaN, over the size a study carries, a
            function that cannot be pickled), or storage, before any study is made.
        KeyboardInterrupt: after an interrupt, once the workers re-queued their trials.
    """
    from studies.kept import keep_inline, name_kept
    from studies.workers import run_study

    spec = name_kept(spec, model=model is not None, data=data is not None)
    checked = spec_of(spec, train_fields=train_fields, **overrides)
    if model is not None or data is not None:
        checked = keep_inline(
            checked.replace(storage=resolve_storage(checked.storage)), model=model, data=data
        )
    table = dict(ray) if isinstance(ray, Mapping) else ray
    settings = ray_settings(
        checked.ray,
        table,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
    )
    if echo is None:
        echo = _progress() if progress else (lambda _line: None)
    # Optuna's INFO lines ("A new study created ...") would interleave with the progress line,
    # which says more; its warnings stay visible.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return run_study(
        checked,
        workers=workers,
        echo=echo,
        live=live,
        heartbeat=heartbeat,
        grace=grace,
        warm_start=warm_start,
        ray=settings,
    )


@user_errors
def load(name: str, *, storage: str | None = None) -> optuna.Study:
    """An existing study, for reading (e.g. `studies.load("digits-mlp").trials_dataframe()`).

    Args:
        storage: a database URL or `env:NAME`; None: $HPSTUDY_STORAGE, else sqlite:///hpstudy.db.

    Raises:
        StudyError: for a missing database, an unset `env:` variable or an unknown study name.
    """
    return open_study(name, storage).study


@user_errors
def export(
    name: str,
    *,
    output: str | Path = "best.toml",
    storage: str | None = None,
    trial: int | None = None,
    weights: str | Path | None = None,
    pick: str | None = None,
    refit: str = "ensemble",
    echo: Echo | None = None,
) -> Path:
    """Writes the best trial's (or trial `trial`'s) complete config and provenance to `output`.

    A study of several objectives has no one best trial: choose with `trial` or `pick`.

    Args:
        output: a .toml, .json or .yaml file.
        pick: a condition such as "params<=50000" (several joined by commas): the trial with
            the best first objective among the Pareto front's trials that meet it.
        weights: also write the trial's kept best-epoch weights (a state dict) to this file;
            a trial of several networks (folds, repeats) kept their ensemble.
        refit: a trial of several networks: "ensemble" (the file trains them again and its
            model averages their predictions; the default, chosen by measurement: see the
            k-fold docs) or "retrain" (one network on the whole training split for the median
            of their best epochs, scaled to the larger split).
        echo: say what was written and what to do next (the command line's lines).

    Returns:
        The file written, ready for `studies.train(path)` or `hpstudy train`.

    Raises:
        StudyError: for an unknown study or trial, a study with no finished trial, a study of
            several objectives without a choice (listing its front), a pick no front trial
            meets, an output that cannot be written, or a trial whose weights were not kept.
    """
    from studies.results import export_best

    path, about = export_best(
        name, url=storage, output=output, number=trial, weights=weights, pick=pick, refit=refit
    )
    if echo is not None:
        values = about.objectives or {}
        shown = "".join(f", {metric} {value:.6g}" for metric, value in values.items())
        echo(f"wrote {path}: trial {about.trial} of '{about.study}'{shown}")
        if weights:
            echo(f"wrote {weights}: its trained weights")
            echo(f"score them on the test set: hpstudy train {path} --weights {weights} --test")
        else:
            echo(f"train it again and score the test set: hpstudy train {path} --test")
    return path


@user_errors
def train(
    path: str | Path,
    *,
    test: bool = False,
    threads: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
    echo: Echo = print,
    model: Callable[..., Any] | None = None,
    data: Any = None,
) -> tuple[FitResult | CrossResult | None, dict[str, float]]:
    """Trains a config file (e.g. an export) as `hpstudy train` does.

    An export of a study run with `model=` or `data=` finds them in this process (the notebook
    that ran the study), in `model`/`data` when given, or else in the study's database
    ($HPSTUDY_STORAGE, or the storage its provenance names). That loading runs their code.

    Args:
        test: also score the test split, which nothing else ever touches.
        threads: torch CPU threads (default: those of the exported trial).
        overrides: fields to change, e.g. {"epochs": 3}.
        weights: score these trained weights instead of training (the fit is then None).
        echo: where the epochs and scores are written.
        model: the factory the export's study kept, given again (checked against its hash).
        data: the data (or loader) the export's study kept, given again (checked likewise).

    Returns:
        The fit (with `.model`, the best epoch's network; for a file of several networks, the
        `CrossResult` of all of them, whose ensemble was scored) and, with `test`, the test
        scores.
    """
    from studies.results import train_file

    return train_file(
        str(path),
        test=test,
        overrides=overrides,
        threads=threads,
        weights=None if weights is None else str(weights),
        echo=echo,
        model=model,
        data=data,
    )


@user_errors
def worker(
    name: str,
    *,
    storage: str | None = None,
    index: int = 0,
    timeout: float | None = None,
    heartbeat: int | None = None,
    grace: int | None = None,
    stop: threading.Event | None = None,
) -> WorkerSummary:
    """Joins study `name` as one more worker, from any machine that reaches its database.

    Ctrl-C (a `KeyboardInterrupt`) in a running trial ends it "interrupted" and re-queues it,
    then returns. The caller's process is left as it was: no logging set-up, no signal
    handlers (a process that exists to run the worker sets them up with
    `studies.worker_process()`, as `hpstudy worker` does, and passes its `stop`).

    Args:
        storage: the study's database (a URL or env:NAME); None: $HPSTUDY_STORAGE, which must
            then be set (a worker never falls back to a local file).
        index: seeds this worker's sampler.
        timeout: stop starting trials after this many seconds.
        heartbeat: seconds between a running trial's heartbeats (default: the study's).
        grace: silence after which a running trial counts as dead (default: the study's).
        stop: set it to end the worker between trials; `worker_process()`'s also interrupts
            the running trial on SIGINT and SIGTERM.

    Raises:
        StudyError: without a storage, or for one that cannot be reached.
    """
    from studies.workers import WorkerOptions, start_worker

    if storage is None and not os.environ.get(STORAGE_ENV):
        raise ParameterError(
            f"a worker needs the study's database: `storage=URL`, `storage=env:NAME` "
            f"(the URL in variable NAME), or {STORAGE_ENV} set to the URL"
        )
    threads = os.environ.get("HPSTUDY_THREADS", "")
    return start_worker(
        name,
        resolve_storage(storage),
        options=WorkerOptions(
            index=index, timeout=timeout, heartbeat_interval=heartbeat, grace_period=grace
        ),
        stop=stop,
        threads=int(threads) if threads.isdigit() and int(threads) > 0 else None,
    )


def _progress() -> Echo:
    """Where progress goes: a display that updates in place in a notebook, else stdout."""
    shell = sys.modules.get("IPython")
    ipython = getattr(shell, "get_ipython", lambda: None)() if shell else None
    if ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell":
        from IPython.display import display

        # Raw text: a str displayed as itself would show its repr, quotes and all.
        handle = display({"text/plain": "starting ..."}, raw=True, display_id=True)

        def update(line: str) -> None:
            text = line.lstrip("\r").replace("\x1b[K", "")
            if handle is not None and text.startswith("trials "):
                handle.update({"text/plain": text}, raw=True)
            else:
                print(text)

        return update
    return lambda line: print(line, flush=True)
