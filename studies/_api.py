"""hpstudy from Python: the command line's service for a notebook or a script.

    import studies

    study = studies.run("my-study.toml", workers=2)    # or a built-in name, or a dict
    print(study.best_value)
    path = studies.export("my-study", output="best.toml")
    result, scores = studies.train(path, test=True)

Each function takes what the matching `hpstudy` command takes and raises the same errors
(`studies.UserError`), with the same messages, instead of printing them.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from studies.spec import SpecError, StudySpec, check_data, load_spec, ray_settings
from studies.storage import load_study as _load_study
from studies.storage import open_storage, require_database, resolve_storage

if TYPE_CHECKING:
    from trainer import FitResult


def spec_of(spec: str | Path | Mapping[str, Any] | StudySpec, **overrides: Any) -> StudySpec:
    """A checked spec from a built-in name, a TOML path, a dict (as the TOML file holds) or a
    `StudySpec`, with `[study]` keys overridden (name, storage, n_trials, timeout, seed, ...).

    Relative paths in a dict's `[train]` start in the current folder, as in a file they start
    beside the file.

    Raises:
        SpecError: listing every problem.
    """
    if isinstance(spec, StudySpec):
        data, source = spec.to_dict(), spec.source
    elif isinstance(spec, Mapping):
        data, source = copy.deepcopy(dict(spec)), "<dict>"
        study = data.setdefault("study", {})
        if isinstance(study, dict):
            study.setdefault("folder", str(Path.cwd()))
    else:
        loaded = load_spec(str(spec))
        if not overrides:
            return loaded
        data, source = loaded.to_dict(), loaded.source
    if overrides:
        study = data.setdefault("study", {})
        if not isinstance(study, dict):
            raise SpecError(["[study] must be a table"], source=source)
        study.update({key: value for key, value in overrides.items() if value is not None})
        shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items() if k != "storage")
        source = f"{source} (with {shown})" if shown else source
    checked = StudySpec.from_dict(data, source=source)
    check_data(checked)
    return checked


def run(
    spec: str | Path | Mapping[str, Any] | StudySpec,
    *,
    model: Callable[..., Any] | None = None,
    data: Any = None,
    workers: int = 1,
    progress: bool = True,
    heartbeat: int | None = None,
    grace: int | None = None,
    warm_start: Sequence[str] = (),
    ray: bool | str | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> optuna.Study:
    """Creates or resumes a study and runs `workers` workers until it is done.

    A script's or a notebook's own factory and data need no file: `model=build` and
    `data=(x, y)` are kept in the study's database (the function pickled by value with
    cloudpickle, the arrays as an .npz of at most `studies.storage.MAX_INLINE_MB`), and every
    worker, here or on another machine, loads them from there. Loading a function from a
    study runs its code: open only studies whose database you trust.

    Args:
        spec: a built-in name ("digits-mlp"), a TOML path, a dict or a `StudySpec`.
        model: the model factory itself, in place of [train] model: called with keyword
            arguments as a factory named there is (input_shape, num_classes, model_args).
        data: the data itself, in place of [train] dataset: a mapping with x_train and
            y_train (optionally x_test and y_test), an `(x_train, y_train)` tuple, a map-style
            torch `Dataset` of (x, y) items (numpy arrays or tensors), or a loader function
            (as [train] dataset names one). Arrays are used with their shapes as given.
        workers: worker processes on this machine, or Ray tasks with `ray`.
        ray: run the workers as Ray tasks (pip install 'hpstudy[ray]'): True for a Ray
            started on this machine, an address ("auto", "ray://head:10001") to join a
            cluster, or a table as the spec's `[study] ray` (address, cpus_per_worker,
            gpus_per_worker); None keeps the spec's.
        progress: show progress: one line redrawn in place in a notebook, lines otherwise.
        heartbeat: seconds between a running trial's heartbeats (kept with the study).
        grace: seconds without a heartbeat after which a trial is failed and re-queued.
        warm_start: exported config files or studies (`NAME@URL`) to try first, once.
        **overrides: `[study]` keys: name, storage, n_trials, timeout, seed, sampler, pruner.

    Returns:
        The Optuna study, loaded from its storage.

    Raises:
        UserError: for a bad spec, user code or data (NaN, over the size a study carries, a
            function that cannot be pickled), or storage, before any study is made.
        KeyboardInterrupt: after an interrupt, once the workers re-queued their trials.
    """
    from studies.storage import keep_inline, name_kept
    from studies.workers import run_study

    spec = name_kept(spec, model=model is not None, data=data is not None)
    checked = spec_of(spec, **overrides)
    if model is not None or data is not None:
        checked = keep_inline(
            checked.replace(storage=resolve_storage(checked.storage)), model=model, data=data
        )
    table = dict(ray) if isinstance(ray, Mapping) else ray
    settings = ray_settings(checked.ray, table, source="ray")
    echo, live = _progress() if progress else ((lambda _line: None), False)
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


def load(name: str, *, storage: str | None = None) -> optuna.Study:
    """An existing study, for reading (e.g. `studies.load("digits-mlp").trials_dataframe()`).

    Args:
        storage: a database URL or `env:NAME`; None: $HPSTUDY_STORAGE, else sqlite:///hpstudy.db.

    Raises:
        StudyError: for a missing database, an unset `env:` variable or an unknown study name.
    """
    url = resolve_storage(storage)
    require_database(url)
    return _load_study(open_storage(url), name, url=url)


def export(
    name: str,
    *,
    output: str | Path = "best.toml",
    storage: str | None = None,
    trial: int | None = None,
) -> Path:
    """Writes the best trial's (or trial `trial`'s) complete config and provenance to `output`.

    Returns:
        The file written, ready for `studies.train(path)` or `hpstudy train`.
    """
    from studies.results import export_best

    path, _ = export_best(name, url=storage, output=output, number=trial)
    return path


def train(
    path: str | Path,
    *,
    test: bool = False,
    threads: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    weights: str | Path | None = None,
    echo: Callable[[str], None] = print,
    model: Callable[..., Any] | None = None,
    data: Any = None,
) -> tuple[FitResult | None, dict[str, float]]:
    """Trains a config file (e.g. an export) as `hpstudy train` does.

    An export of a study run with `model=` or `data=` finds them in this process (the notebook
    that ran the study), in `model`/`data` when given, or else in the study's database
    ($HPSTUDY_STORAGE, or the storage its provenance names). That loading runs their code.

    Args:
        weights: score these trained weights instead of training (the fit is then None).
        model: the factory the export's study kept, given again (checked against its hash).
        data: the data (or loader) the export's study kept, given again (checked likewise).

    Returns:
        The fit (with `.model`, the best epoch's network) and, with `test`, the test scores.
    """
    from studies.results import train_file

    pairs = [f"{key}={_toml(value)}" for key, value in (overrides or {}).items()]
    return train_file(
        str(path),
        test=test,
        overrides=pairs,
        threads=threads,
        weights=None if weights is None else str(weights),
        echo=echo,
        model=model,
        data=data,
    )


def _toml(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def _progress() -> tuple[Callable[[str], None], bool]:
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

        return update, False
    return (lambda line: print(line, flush=True)), False
